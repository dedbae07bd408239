"""MLflow record of an evaluation: metrics on a subset, tables and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sslmae.config.schema import TrackingConfig
from sslmae.report import plots
from sslmae.tracking.lineage import log_dataset, training_run
from sslmae.tracking.runs import client, log_files, log_metrics, log_plots, mlflow_run


def log_evaluation(tracking: TrackingConfig, model_path, subset: str, metrics: dict, table: pd.DataFrame,
                   y: np.ndarray, scores: np.ndarray, label_names: list[str], out: Path, data_dir: Path) -> None:
    model_run = training_run(model_path)
    tags = {"sslmae.subset": subset, "sslmae.model": str(model_path)}
    if model_run:
        tags["sslmae.model_run_id"] = model_run
    with mlflow_run(tracking, name=f"evaluate-{subset}", kind="evaluate", tags=tags) as run:
        run_id = run.info.run_id
        log_dataset(client(tracking), run_id, data_dir, "evaluate")
        log_metrics(tracking, run_id, {f"{subset}_{k}": v for k, v in metrics.items()})
        log_files(tracking, run_id, {"metrics": out / "metrics.json", "per_class": out / "per_class.csv"})
        log_plots(tracking, run_id, {"per_class_ap.png": plots.per_class_ap(table),
                                "pr_curves.png": plots.pr_curves(y, scores, label_names)})
