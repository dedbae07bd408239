"""MLflow logging of one training run: params and environment at the start, every
epoch's losses, w, lr and validation metrics as they finish, files and plots at the end.

Only rank 0 logs. A resumed run continues the MLflow run it started (recorded in
out_dir/mlflow_run.json), so a kill and resume leaves one run, not two.
"""

from __future__ import annotations

import math
from pathlib import Path

from sslmae.config import Config
from sslmae.tracking.runs import flat_params, log_files, log_plots, mlflow_run, record_run, recorded_run_id


class EpochLogger:
    def __init__(self, cfg: Config, out_dir: Path, is_rank_zero: bool, resumed_from: Path | None):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.active = cfg.tracking.enabled and is_rank_zero
        self.resume_id = recorded_run_id(out_dir) if resumed_from is not None else None
        self.run_id: str | None = None
        self._ctx = None

    def __enter__(self):
        if not self.active:
            return self
        if self.resume_id:
            import mlflow

            from sslmae.tracking.runs import tracking_uri

            mlflow.set_tracking_uri(tracking_uri(self.cfg))
            self._ctx = mlflow.start_run(run_id=self.resume_id)
            run = self._ctx.__enter__()
        else:
            self._ctx = mlflow_run(self.cfg, name=self.out_dir.name, kind="train")
            run = self._ctx.__enter__()
            import mlflow

            mlflow.log_params(flat_params(self.cfg))
        self.run_id = run.info.run_id
        record_run(self.out_dir, run)
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False

    def log_epoch(self, row: dict) -> None:
        if not self.active:
            return
        import mlflow

        metrics = {k: float(v) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float)) and not math.isnan(float(v))}
        mlflow.log_metrics(metrics, step=int(row["epoch"]))


def log_train_end(tracker: EpochLogger, out: Path) -> None:
    """Files and plots of a finished run."""
    if not tracker.active:
        return
    import pandas as pd

    log_files({"metrics": out / "metrics.json", "history": out / "history.csv"})
    log_files({"model": out / "model.pt"}, artifact_path="model")
    from sslmae.report import plots

    history = pd.read_csv(out / "history.csv")
    log_plots({"learning_curves.png": plots.learning_curves(history), "w_trajectory.png": plots.w_trajectory(history)})
