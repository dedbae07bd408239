"""`train(cfg) -> TrainResult`: one SSL-MAE training run, callable from tests, CLI, DVC and
Kubeflow. Writes to cfg.train.out_dir:

    model.pt          best-by-validation weights + config + label names (weights_only-loadable)
    last.pt           the last epoch's, same format
    history.csv       per epoch: losses, w, lr, images seen, validation metrics
    metrics.json      best validation metrics, best epoch, w, training time
    checkpoints/      last.ckpt (resumable state) and best.ckpt (best weights): Lightning's

Seeded, and deterministic on CPU. Under DDP every rank trains; rank 0 alone writes files
and logs to MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from sslmae.atomic import write_json
from sslmae.config import Config
from sslmae.hardware import COMPILE, resolve_hardware
from sslmae.inference import predict_scores
from sslmae.metrics.thresholds import tune_thresholds
from sslmae.model.variants import build_model
from sslmae.tracking.runs import check_tracking
from sslmae.tracking.train_log import log_train_end, log_train_start, train_logger
from sslmae.train.checkpoint import save_model
from sslmae.outputs import claim_folder, write_marker
from sslmae.train.checkpointing import CHECKPOINT_DIR, AtomicCheckpointIO, best_weights, checkpoint_callbacks
from sslmae.train.datamodule import SSLDataModule
from sslmae.train.history import EpochHistory
from sslmae.train.module import SSLMAEModule
from sslmae.train.quiet import quiet_lightning
from sslmae.train.resume import resume_path


@dataclass
class TrainResult:
    checkpoint: Path  # best-by-validation model (weights_only-loadable)
    last_checkpoint: Path
    val_metrics: dict | None
    best_epoch: int
    w_per_epoch: list[float]
    history: Path
    seconds: float
    label_names: list[str] = field(default_factory=list)
    run_id: str | None = None  # the MLflow run, when tracking is on
    rank_zero: bool = True  # False in the other DDP ranks, which write nothing


def _strategy(cfg: Config) -> str:
    """DDP when more than one device or node; nccl on GPU, gloo on CPU (Lightning's choice)."""
    if cfg.train.strategy != "auto":
        return cfg.train.strategy
    return "ddp" if cfg.train.devices * cfg.train.num_nodes > 1 else "auto"


def _trainer(cfg: Config, out: Path, callbacks: list, logger) -> L.Trainer:
    accelerator, precision = resolve_hardware(cfg.train.accelerator, cfg.train.precision)
    return L.Trainer(
        max_epochs=cfg.train.epochs, min_epochs=cfg.train.min_epochs, accelerator=accelerator,
        devices=cfg.train.devices, num_nodes=cfg.train.num_nodes, strategy=_strategy(cfg), precision=precision,
        deterministic=cfg.train.deterministic and accelerator == "cpu",
        callbacks=callbacks, logger=logger if logger is not None else False, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=cfg.train.progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
        check_val_every_n_epoch=cfg.train.val_every,
        use_distributed_sampler=False,  # our batch samplers shard by rank themselves (sslmae.data.sampling)
        default_root_dir=str(out),
    )


def _write_outputs(cfg: Config, module: SSLMAEModule, datamodule: SSLDataModule, history: EpochHistory,
                   best_ckpt, out: Path, seconds: float) -> tuple[Path, Path, int, dict | None, list[float]]:
    history.write(out / "history.csv")
    labels = datamodule.label_names
    model = module.model
    last = save_model(out / "last.pt", model, cfg, labels, epoch=history.rows[-1]["epoch"])
    last_epoch = history.rows[-1]["epoch"]  # early stopping may end before train.epochs
    best_epoch, best_metrics = last_epoch, history.validation(last_epoch)  # train.select=last, or never validated
    if cfg.train.select == "best" and best_ckpt.best_model_path:
        best_epoch, weights = best_weights(best_ckpt.best_model_path)
        model.load_state_dict(weights)
        best_metrics = history.validation(best_epoch)
    thresholds = None
    if cfg.data.task == "mlc" and datamodule.val_dataloader():  # per class, tuned on validation
        scores, y = predict_scores(model, datamodule.val_dataloader(), module.device)
        thresholds = tune_thresholds(y, scores, cfg.evaluate.threshold)
    best = save_model(out / "model.pt", model, cfg, labels, epoch=best_epoch, val_metrics=best_metrics or {},
                      thresholds=thresholds)
    w_per_epoch = [float(r["w"]) for r in history.rows]
    write_json(out / "metrics.json", {
        "best_epoch": best_epoch, "epochs": cfg.train.epochs, "epochs_run": last_epoch + 1,
        "train_seconds": round(seconds, 2),
        "w_final": w_per_epoch[-1] if w_per_epoch else None,
        **{f"val_{k}": v for k, v in (best_metrics or {}).items()}})
    return best, last, best_epoch, best_metrics, w_per_epoch


def train(cfg: Config) -> TrainResult:
    """One training run as cfg says; resumes from out_dir's checkpoint when train.resume=auto."""
    started = time.time()
    out = claim_folder(cfg.train.out_dir, "train", legacy=(f"{CHECKPOINT_DIR}/last.ckpt",))
    check_tracking(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = SSLDataModule(cfg)
    accelerator, _ = resolve_hardware(cfg.train.accelerator, cfg.train.precision)
    module = SSLMAEModule(build_model(cfg, num_classes=len(datamodule.label_names)), cfg,
                          compiled=COMPILE[cfg.train.compile](accelerator))
    ckpt = resume_path(cfg)
    history = EpochHistory()
    last_ckpt, best_ckpt = checkpoint_callbacks(out, cfg.train.checkpoint_every, module.monitor)
    callbacks = [history, last_ckpt, best_ckpt]
    if cfg.train.early_stop_patience:  # the authors' rule: the validation loss stops improving
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=cfg.train.early_stop_patience))
    logger = train_logger(cfg, out, resumed=ckpt is not None)
    with quiet_lightning():
        trainer = _trainer(cfg, out, callbacks, logger)
        if trainer.is_global_zero:
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, "train")
            log_train_start(logger, cfg, out, resumed=ckpt is not None)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True if ckpt else None)
        except SystemExit:
            if trainer.interrupted:  # Lightning turns Ctrl-C into exit(1); the caller decides what it means
                raise KeyboardInterrupt from None
            raise
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return TrainResult(out / "model.pt", out / "last.pt", None, -1, [], out / "history.csv", seconds,
                           datamodule.label_names, rank_zero=False)
    best, last, best_epoch, best_metrics, w_per_epoch = _write_outputs(cfg, module, datamodule, history, best_ckpt,
                                                                       out, seconds)
    log_train_end(logger, cfg, out)
    return TrainResult(best, last, best_metrics, best_epoch, w_per_epoch, out / "history.csv", seconds,
                       datamodule.label_names, logger.run_id if logger is not None else None)
