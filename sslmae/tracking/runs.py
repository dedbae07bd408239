"""MLflow runs: where they go, what each records, and how grid trials nest.

The tracking URI is `tracking.uri` from params, else $MLFLOW_TRACKING_URI, else
`sqlite:///mlflow.db` in the working folder (artifacts then go to ./mlruns). Each train,
grid and evaluate call is one run; grid trials are made children of their grid's parent
run by the `mlflow.parentRunId` tag, so trials can run in separate processes (DVC foreach,
Kubeflow ParallelFor) and still nest.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Iterator

import lightning
import timm
import torch

import sslmae
from sslmae.atomic import write_json
from sslmae.config import Config, to_dict

DEFAULT_URI = "sqlite:///mlflow.db"
RUN_FILE = "mlflow_run.json"  # written beside a run's outputs: which MLflow run holds them


def mlflow_module():
    """mlflow, imported on first use: it is optional (the `pipeline` extra) and takes
    seconds to import, and training with tracking off must not need it."""
    import mlflow

    return mlflow


def client(cfg: Config):
    """An MlflowClient on the run's tracking URI."""
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(tracking_uri(cfg))
    return mlflow.MlflowClient()


def tracking_uri(cfg: Config) -> str:
    return cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def flat_params(cfg: Config) -> dict[str, str]:
    """Config as MLflow params: {'model.mask_ratio': '0.6', ...}."""
    out = {}
    for section, values in to_dict(cfg).items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": json.dumps(v) if isinstance(v, list) else str(v) for k, v in values.items()})
        else:
            out[section] = str(values)
    return out


def environment() -> dict[str, str]:
    """Versions and device, as tags."""
    env = {"sslmae.version": sslmae.__version__, "python": platform.python_version(), "torch": torch.__version__,
           "lightning": lightning.__version__, "timm": timm.__version__, "host.platform": platform.platform()}
    if torch.cuda.is_available():
        env["device"] = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    else:
        env["device"] = f"cpu ({os.cpu_count()} cores)"
    return env


@contextlib.contextmanager
def mlflow_run(cfg: Config, name: str, kind: str, tags: dict | None = None) -> Iterator[object | None]:
    """Start an MLflow run (None when tracking is disabled). `kind`: grid | evaluate | register | promote."""
    if not cfg.tracking.enabled:
        yield None
        return
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(tracking_uri(cfg))
    mlflow.set_experiment(cfg.tracking.experiment)
    all_tags = {"sslmae.kind": kind, **environment(), **(tags or {})}
    with mlflow.start_run(run_name=name, tags=all_tags) as run:
        yield run


def record_run(out_dir: str | Path, run) -> None:
    """Remember which MLflow run holds the outputs of `out_dir` (for nesting and lineage)."""
    if run is not None:
        write_json(Path(out_dir) / RUN_FILE, {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                                              "artifact_uri": run.info.artifact_uri})


def recorded_run_id(out_dir: str | Path) -> str | None:
    path = Path(out_dir) / RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def nest(cfg: Config, parent_run_id: str, child_run_ids: list[str]) -> None:
    """Make runs children of a parent (MLflow's UI nests by this tag)."""
    mlflow_client = client(cfg)
    for rid in child_run_ids:
        mlflow_client.set_tag(rid, "mlflow.parentRunId", parent_run_id)


def log_files(cfg: Config, run_id: str, files: dict[str, Path], artifact_path: str | None = None) -> None:
    """Log the files that exist as artifacts of run `run_id`."""
    mlflow_client = client(cfg)
    for path in files.values():
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_plots(cfg: Config, run_id: str, plots: dict[str, bytes], artifact_path: str = "plots") -> None:
    """Log PNG bytes as artifacts of run `run_id`: {'learning_curves.png': b'...'}."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in plots.items():
            (Path(tmp) / name).write_bytes(data)
        client(cfg).log_artifacts(run_id, tmp, artifact_path=artifact_path)


def log_metrics(cfg: Config, run_id: str, metrics: dict, step: int | None = None) -> None:
    """Log the finite numbers of `metrics` to run `run_id` (NaN: a metric undefined on this data)."""
    now = int(time.time() * 1000)
    batch = [mlflow_module().entities.Metric(k, float(v), now, step or 0) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
    if batch:
        client(cfg).log_batch(run_id, metrics=batch)
