"""Model files from the MLflow model registry: `models:/NAME@ALIAS` or `models:/NAME/VERSION` (an
MLflow Model holding the file, or, for versions registered before sslmae logged those, a folder
holding model.pt)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from sslmae.config.schema import TrackingConfig
from sslmae.tracking.runs import check_reachable, mlflow_module, ready_store, tracking_uri

CHALLENGER, CHAMPION = "challenger", "champion"
BAR_VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def download_bar_only_on_a_terminal() -> Iterator[None]:
    """MLflow draws a tqdm bar per download; in DVC logs and pods it is a line of carriage
    returns. Off there unless the user set MLflow's own switch."""
    if sys.stderr.isatty() or BAR_VAR in os.environ:
        yield
        return
    os.environ[BAR_VAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(BAR_VAR, None)


def _registry(tracking: TrackingConfig | None):
    """mlflow, pointed at `tracking`'s URI (else the environment's) and checked to answer."""
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(ready_store(tracking_uri(tracking) if tracking else mlflow.get_tracking_uri()))
    check_reachable(mlflow.get_tracking_uri())
    return mlflow


def resolve_model(uri: str, tracking: TrackingConfig | None = None, workdir: str | Path | None = None) -> Path:
    """A model file for `uri`: a local path as is, or `models:/NAME@ALIAS` / `models:/NAME/VERSION`
    downloaded from the registry (tracking URI from `tracking`, else the environment)."""
    if not uri.startswith("models:/"):
        return Path(uri)
    mlflow = _registry(tracking)
    dst = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sslmae-model-"))
    try:
        with download_bar_only_on_a_terminal():
            folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception as exc:  # unknown name, alias or version
        raise ValueError(f"{uri}: cannot load from the model registry at {mlflow.get_tracking_uri()}: {exc}") from None
    # an MLflow Model keeps the model file among its artifacts; versions registered before
    # sslmae logged MLflow Models are a folder holding model.pt
    found = sorted((folder / "artifacts").glob("*")) if (folder / "MLmodel").is_file() else sorted(folder.rglob("model.pt"))
    if not found:
        raise ValueError(f"{uri}: the registered artifacts hold no sslmae model file")
    return found[0]


def pinned(uri: str, tracking: TrackingConfig | None = None) -> str:
    """`models:/NAME@ALIAS` -> `models:/NAME/VERSION` (the version the alias names now);
    `models:/NAME/VERSION` as is. What a deployment serves must not move when an alias does."""
    if not uri.startswith("models:/"):
        raise ValueError(f"--model: a registry version, models:/NAME@ALIAS or models:/NAME/VERSION, got {uri}")
    rest = uri.removeprefix("models:/")
    if "@" not in rest:
        return uri
    name, alias = rest.split("@", 1)
    mlflow = _registry(tracking)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except Exception as exc:  # no such model or alias
        raise ValueError(f"{uri}: not in the model registry at {mlflow.get_tracking_uri()}: {exc}") from None
    return f"models:/{name}/{version.version}"
