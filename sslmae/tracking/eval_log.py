"""MLflow record of an evaluation: metrics on a subset, tables and plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sslmae.config import Config
from sslmae.tracking.runs import log_files, log_plots, mlflow_run, recorded_run_id


def log_evaluation(cfg: Config, model_path, subset: str, metrics: dict, table: pd.DataFrame,
                   y: np.ndarray, scores: np.ndarray, label_names: list[str], out: Path) -> None:
    import mlflow

    from sslmae.report import plots

    model_run = recorded_run_id(Path(model_path).parent)
    tags = {"sslmae.subset": subset, "sslmae.model": str(model_path)}
    if model_run:
        tags["sslmae.model_run_id"] = model_run
    with mlflow_run(cfg, name=f"evaluate-{subset}", kind="evaluate", tags=tags):
        mlflow.log_metrics({f"{subset}_{k}": float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float)) and not math.isnan(float(v))})
        log_files({"metrics": out / "metrics.json", "per_class": out / "per_class.csv"})
        log_plots({"per_class_ap.png": plots.per_class_ap(table),
                   "pr_curves.png": plots.pr_curves(y, scores, label_names)})
