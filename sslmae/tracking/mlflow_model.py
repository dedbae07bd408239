"""A model file logged as an MLflow Model (a LoggedModel of the run that made it): the pyfunc
flavor "from code" (sslmae/serving/mlflow_code.py, a file MLflow copies, not an import of a
higher layer), the model file itself as its one artifact (the weights stored once), the sslmae
code it runs, a signature and input example, and pip requirements pinned to the versions this
install runs (what the project tests)."""

from __future__ import annotations

import importlib.metadata as metadata
import io
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sslmae.bands import Bands, read_model_bands
from sslmae.config.schema import TrackingConfig
from sslmae.tracking.models import download_bar_only_on_a_terminal
from sslmae.tracking.runs import mlflow_module, store_uri

PACKAGE = Path(__file__).resolve().parents[1]  # the sslmae package: bundled, so the model runs where sslmae is not installed
CODE_FILE = PACKAGE / "serving" / "mlflow_code.py"
NAME = "model"  # the LoggedModel's name in its run
ARTIFACT = "model_file"  # sslmae.serving.pyfunc.ARTIFACT


def requirements() -> list[str]:
    """sslmae's own runtime dependencies and MLflow, each pinned to the installed version."""
    names = ["mlflow"] + [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in metadata.requires("sslmae") or []
                          if "extra ==" not in r]
    return [f"{n}=={metadata.version(n)}" for n in dict.fromkeys(names)]


def signature(labels: list[str]):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec("double", f"prob_{name}") for name in labels] + [ColSpec("string", "predicted")]
    return ModelSignature(inputs=Schema([ColSpec("binary", "image")]), outputs=Schema(outputs))


def input_example(img_size: int, bands: Bands | None = None) -> pd.DataFrame:
    """One encoded PNG at the model's input size (a gradient: a real image, not zeros); a model with
    bands: a GeoTIFF of its bands, each a gradient between its training percentiles."""
    if bands is not None:
        return pd.DataFrame({"image": [_band_example(img_size, bands)]})
    ramp = np.linspace(0, 255, img_size, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (img_size, 1)), np.tile(ramp[:, None], (1, img_size)),
                       np.full((img_size, img_size), 128, np.uint8)], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return pd.DataFrame({"image": [buf.getvalue()]})


def _band_example(img_size: int, bands: Bands) -> bytes:
    from rasterio.io import MemoryFile  # late: only models with bands need GDAL

    ramp = np.linspace(0.0, 1.0, img_size)[None, :] * np.linspace(0.5, 1.0, img_size)[:, None]
    lo, hi = bands.unit_range()
    cube = np.stack([lo[b] + (hi[b] - lo[b]) * ramp for b in range(bands.count)]).astype(bands.dtype)
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=img_size, height=img_size, count=bands.count, dtype=bands.dtype) as dst:
            dst.write(cube)
            dst.descriptions = bands.names
        return mem.read()


def _code_copy(dst: Path) -> Path:
    """The sslmae package without caches, as the model's code path."""
    shutil.copytree(PACKAGE, dst / "sslmae", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst / "sslmae"


def log_mlflow_model(tracking: TrackingConfig, run_id: str, model_path: str | Path, labels: list[str],
                     img_size: int) -> str:
    """Log `model_path` (whose label names and input size the caller has) as the MLflow Model of
    run `run_id`; -> its model id (models:/<id>)."""
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(store_uri(tracking))
    with tempfile.TemporaryDirectory(prefix="sslmae-mlmodel-") as tmp, download_bar_only_on_a_terminal(), \
            warnings.catch_warnings():
        # the signature states the input; MLflow's type-hint inference is not wanted
        warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
        # made here, in the run's experiment: left to itself MLflow puts it in the active (Default) one
        client = mlflow.MlflowClient()
        logged = client.create_logged_model(experiment_id=client.get_run(run_id).info.experiment_id, name=NAME,
                                            source_run_id=run_id, model_type="sslmae")
        info = mlflow.models.Model.log(
            artifact_path=None, name=NAME, flavor=mlflow.pyfunc, run_id=run_id, model_id=logged.model_id,
            python_model=str(CODE_FILE),
            artifacts={ARTIFACT: str(model_path)}, code_paths=[str(_code_copy(Path(tmp)))],
            signature=signature(labels), input_example=input_example(img_size, read_model_bands(model_path)),
            pip_requirements=requirements())
    return info.model_id
