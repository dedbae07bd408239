"""MLflow for one training run: Lightning's own MLFlowLogger receives every epoch's row
(step = epoch, from `sslmae.train.history.EpochHistory`); params and environment at the start,
files and plots at the end. Lightning logs from rank 0 only.

A resumed run continues the MLflow run it started (recorded in out_dir/mlflow_run.json),
so a kill and resume leaves one run, not two.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from sslmae.config.schema import TrackingConfig
from sslmae.redact import redact
from sslmae.report import plots
from sslmae.bands import read_model_bands
from sslmae.tracking.mlflow_model import log_mlflow_model
from sslmae.tracking.lineage import lineage_tags, log_dataset, record_run, recorded_run_id, run_label
from sslmae.tracking.runs import environment, flat_params, log_files, log_plots, store_uri


def train_logger(tracking: TrackingConfig, out_dir: str | Path, resumed: bool) -> MLFlowLogger | None:
    """The logger of a run (None when tracking is off, and on every DDP rank but the first, which
    alone logs: its rank comes from the launcher's environment, before the Trainer exists);
    a resumed run gets its earlier MLflow run."""
    if not tracking.enabled or rank_zero_only.rank != 0:
        return None
    return MLFlowLogger(experiment_name=tracking.experiment, run_name=f"{Path(out_dir).name} @ {run_label()}",
                        tracking_uri=store_uri(tracking),
                        tags={"sslmae.kind": "train", **environment(), **lineage_tags()},
                        run_id=recorded_run_id(out_dir) if resumed else None)


def log_train_start(logger: MLFlowLogger | None, params: dict, data_dir: str | Path, out_dir: str | Path,
                    resumed: bool, composition: dict[str, str] | None = None) -> None:
    """On rank 0: the params (the run's config as a dict; once per MLflow run), the dataset as the
    run's input, what it trains on (`composition`: sizes and digests of the labeled images and the
    pool, as tags), and out_dir/mlflow_run.json."""
    if logger is None:
        return
    if not resumed:
        logger.log_hyperparams(flat_params(params))
        log_dataset(logger.experiment, logger.run_id, data_dir, "train")
        for key, value in (composition or {}).items():
            logger.experiment.set_tag(logger.run_id, key, value)
    record_run(out_dir, logger.experiment.get_run(logger.run_id))


def log_pretrained(logger: MLFlowLogger | None, provenance: dict[str, str] | None) -> None:
    """The starting weights as tags of the run: `sslmae.pretrained.source`, `.revision` (Hub commit or
    ETag), `.file`, `.sha256` (of the bytes loaded)."""
    if logger is None or not provenance:
        return
    for key, value in provenance.items():
        logger.experiment.set_tag(logger.run_id, f"sslmae.pretrained.{key}", redact(str(value)))


def log_train_end(logger: MLFlowLogger | None, tracking: TrackingConfig, out: Path, labels: list[str],
                  img_size: int) -> None:
    """Files and plots of a finished run; out/model.pt as its MLflow Model (`labels`, `img_size`: its own)."""
    if logger is None:
        return
    run_id = logger.run_id
    log_files(tracking, run_id, {"metrics": out / "metrics.json", "history": out / "history.csv"})
    log_mlflow_model(tracking, run_id, out / "model.pt", labels, img_size)  # the model file inside an MLflow Model: stored once
    bands = read_model_bands(out / "model.pt")
    if bands is not None:  # what the served model normalises with, readable without the model file
        logger.experiment.set_tag(run_id, "sslmae.bands", f"{','.join(bands.names)} ({bands.dtype}, {bands.rule})")
        logger.experiment.log_dict(run_id, json.loads(bands.to_json()), "bands.json")
    history = pd.read_csv(out / "history.csv")
    log_plots(tracking, run_id, {"learning_curves.png": plots.learning_curves(history),
                                 "w_trajectory.png": plots.w_trajectory(history)})
