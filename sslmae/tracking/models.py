"""Model files from the MLflow model registry: `models:/NAME@ALIAS` or `models:/NAME/VERSION`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sslmae.config import Config
from sslmae.tracking.runs import check_reachable, mlflow_module, tracking_uri

CHALLENGER, CHAMPION = "challenger", "champion"


def resolve_model(uri: str, cfg: Config | None = None, workdir: str | Path | None = None) -> Path:
    """A model file for `uri`: a local path as is, or `models:/NAME@ALIAS` / `models:/NAME/VERSION`
    downloaded from the registry (tracking URI from cfg, else the environment)."""
    if not uri.startswith("models:/"):
        return Path(uri)
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(tracking_uri(cfg) if cfg else (mlflow.get_tracking_uri()))
    check_reachable(mlflow.get_tracking_uri())
    dst = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sslmae-model-"))
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception as exc:  # unknown name, alias or version
        raise ValueError(f"{uri}: cannot load from the model registry at {mlflow.get_tracking_uri()}: {exc}") from None
    found = sorted(folder.rglob("model.pt"))
    if not found:
        raise ValueError(f"{uri}: the registered artifacts hold no model.pt")
    return found[0]
