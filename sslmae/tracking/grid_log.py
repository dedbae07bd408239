"""MLflow record of a grid: one parent run, the trials' runs nested under it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sslmae.config import Config
from sslmae.report import plots
from sslmae.tracking.runs import (flat_params, log_files, log_metrics, log_plots, mlflow_module, mlflow_run, nest,
                                  record_run, recorded_run_id)


# what differs from trial to trial is logged in the trials' own runs, not the parent's
PER_TRIAL = {"loss.w", "loss.learn_w", "train.out_dir"}


def log_grid(cfg: Config, table: pd.DataFrame, selected: dict, out: Path) -> str | None:
    """Parent run with the trials table, the selection and the metric-vs-w plot; returns its id
    and stores it in `selected` as `parent_run_id`."""
    if not cfg.tracking.enabled:
        return None
    children = [rid for rid in (recorded_run_id(Path(c).parent) for c in table["checkpoint"]) if rid]
    with mlflow_run(cfg, name="grid", kind="grid", tags={"sslmae.selected_trial": selected["trial"]}) as run:
        run_id = run.info.run_id
        mlflow_module().log_params({k: v for k, v in flat_params(cfg).items() if k not in PER_TRIAL})
        log_metrics(cfg, run_id, {f"best_{selected['metric']}": selected["value"]})
        log_files(cfg, run_id, {"trials": out / "trials.csv"})
        log_plots(cfg, run_id, {"metric_vs_w.png": plots.metric_vs_w(table, selected["metric"])})
        nest(cfg, run_id, children)
        record_run(out, run)
    selected["parent_run_id"] = run.info.run_id
    return run.info.run_id
