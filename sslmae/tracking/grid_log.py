"""MLflow record of a grid: one parent run, the trials' runs nested under it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sslmae.config.schema import TrackingConfig
from sslmae.report import plots
from sslmae.tracking.lineage import record_run, recorded_run_id
from sslmae.tracking.runs import (check_tracking, client, existing_run, log_files, log_metrics, log_plots,
                                  mlflow_module, mlflow_run, nest)


def _exists(tracking: TrackingConfig, run_id: str) -> bool:
    try:
        client(tracking).get_run(run_id)
    except Exception:  # another tracking store's run (a teammate's clone), or deleted
        return False
    return True


def _existing_parent(tracking: TrackingConfig, children: list[str]) -> str | None:
    """The grid run every trial run already belongs to, if there is one and it still exists."""
    mlflow_client = client(tracking)
    parents = {mlflow_client.get_run(rid).data.tags.get("mlflow.parentRunId") for rid in children}
    if len(parents) != 1 or None in parents:
        return None
    (parent,) = parents
    try:
        return parent if mlflow_client.get_run(parent).info.lifecycle_stage == "active" else None
    except Exception:  # deleted from the store
        return None


def log_grid(tracking: TrackingConfig, shared: dict[str, str], table: pd.DataFrame, selected: dict,
             out: Path) -> str | None:
    """The grid's parent run: the params every trial shares (`shared`, flat; what differs is in the
    trials' own runs), the trials table, the selection and the metric-vs-w plot. When the trials
    already have a parent grid run (select ran before on the same trials), that run is updated:
    runs are never re-parented. Returns the parent's id (None when tracking is off)."""
    if not tracking.enabled:
        return None
    recorded = [rid for rid in (recorded_run_id(Path(c).parent) for c in table["checkpoint"]) if rid]
    children = [rid for rid in recorded if _exists(tracking, rid)]  # trials tracked elsewhere are left alone
    parent = _existing_parent(tracking, children) if children else None
    tags = {"sslmae.selected_trial": selected["trial"]}
    with (existing_run(tracking, parent) if parent else mlflow_run(tracking, name="grid", kind="grid", tags=tags)) as run:
        run_id = run.info.run_id
        if parent is None:
            mlflow_module().log_params(shared)
            nest(tracking, run_id, children)
        else:
            client(tracking).set_tag(run_id, "sslmae.selected_trial", selected["trial"])
        log_metrics(tracking, run_id, {f"best_{selected['metric']}": selected["value"]})
        log_files(tracking, run_id, {"trials": out / "trials.csv"})
        log_plots(tracking, run_id, {"metric_vs_w.png": plots.metric_vs_w(table, selected["metric"])})
        record_run(out, run)
    return run_id


def log_report(tracking: TrackingConfig, grid_dir: Path, report: Path) -> str | None:
    """The HTML report as an artifact of the grid's parent run (recorded in grid_dir)."""
    run_id = recorded_run_id(grid_dir)
    if not tracking.enabled or run_id is None:
        return None
    check_tracking(tracking)
    log_files(tracking, run_id, {"report": report})
    return run_id
