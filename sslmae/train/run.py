"""`train(cfg) -> TrainResult`: one SSL-MAE training run, callable from tests, CLI, DVC and
Kubeflow. Writes to cfg.train.out_dir:

    model.pt          best-by-validation weights + config + label names (weights_only-loadable)
    last.pt           the last epoch's, same format
    history.csv       per epoch: losses, w, lr, images seen, validation metrics
    metrics.json      best validation metrics, best epoch, w, training time
    checkpoints/last.ckpt   the resumable state after the last finished epoch

Seeded, and deterministic on CPU. Under DDP every rank trains; rank 0 alone writes files
and logs to MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from sslmae.atomic import atomic_file, write_json
from sslmae.config import Config
from sslmae.model.network import build_model
from sslmae.train.checkpoint import save_model
from sslmae.train.datamodule import SSLDataModule
from sslmae.train.module import SSLMAEModule
from sslmae.train.quiet import quiet_lightning
from sslmae.train.resume import last_checkpoint, resume_path, save_atomic

ACCELERATORS = {"auto": lambda: "gpu" if torch.cuda.is_available() else "cpu", "cpu": lambda: "cpu",
                "gpu": lambda: "gpu", "cuda": lambda: "gpu"}
# bf16 autocast on GPU, full fp32 on CPU
AUTO_PRECISION = {"gpu": "bf16-mixed", "cpu": "32-true"}
HISTORY_FIRST = ("epoch", "train_loss", "train_l_rec", "train_l_cls", "w", "lr", "train_images")


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


def resolve_hardware(cfg: Config) -> tuple[str, str]:
    accelerator = ACCELERATORS[cfg.train.accelerator]()
    precision = AUTO_PRECISION[accelerator] if cfg.train.precision == "auto" else cfg.train.precision
    return accelerator, "32-true" if precision == "32" else precision


def maybe_compile(model, cfg: Config, accelerator: str) -> bool:
    """torch.compile the training step and the encoder when train.compile says so."""
    if {"auto": accelerator == "gpu", "on": True, "off": False}[cfg.train.compile]:
        model.compile_paths()
        return True
    return False


def _checkpoint_due(cfg: Config, epoch: int) -> bool:
    every = cfg.train.checkpoint_every
    return (epoch + 1) % every == 0 or epoch + 1 == cfg.train.epochs


def _strategy(cfg: Config, accelerator: str) -> str:
    """DDP when more than one device or node; nccl on GPU, gloo on CPU (Lightning's choice)."""
    return cfg.train.strategy if cfg.train.strategy != "auto" else (
        "ddp" if cfg.train.devices * cfg.train.num_nodes > 1 else "auto")


def _trainer(cfg: Config, accelerator: str, precision: str, out: Path) -> L.Trainer:
    return L.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=accelerator,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        strategy=_strategy(cfg, accelerator),
        precision=precision,
        deterministic=cfg.train.deterministic and accelerator == "cpu",
        logger=False,
        enable_checkpointing=False,  # our own atomic epoch checkpoint (sslmae.train.resume)
        enable_progress_bar=cfg.train.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=cfg.train.val_every,
        use_distributed_sampler=False,  # our batch samplers shard by rank themselves
        default_root_dir=str(out),
    )


def _val_thresholds(cfg: Config, module: SSLMAEModule, datamodule: SSLDataModule) -> list[float] | None:
    """Per-class thresholds tuned on validation for the selected weights (mlc only)."""
    loader = datamodule.val_dataloader()
    if cfg.data.task != "mlc" or not loader:
        return None
    from sslmae.inference import predict_scores
    from sslmae.metrics.thresholds import tune_thresholds

    scores, y = predict_scores(module.model, loader, module.device)
    return tune_thresholds(y, scores, cfg.evaluate.threshold)


def _write_outputs(cfg: Config, module: SSLMAEModule, datamodule: SSLDataModule, labels: list[str], out: Path,
                   seconds: float):
    history = pd.DataFrame(module.history)
    first = [c for c in HISTORY_FIRST if c in history]
    history = history[first + [c for c in history.columns if c not in first]]
    with atomic_file(out / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    model = module.model
    last = save_model(out / "last.pt", model, cfg, labels, epoch=cfg.train.epochs - 1)
    model.load_state_dict(module.best_state)
    best = save_model(out / "model.pt", model, cfg, labels, epoch=module.best_epoch,
                      val_metrics=module.best_metrics or {}, thresholds=_val_thresholds(cfg, module, datamodule))
    w_per_epoch = [float(v) for v in history["w"]] if "w" in history else []
    summary = {
        "best_epoch": module.best_epoch, "epochs": cfg.train.epochs, "train_seconds": round(seconds, 2),
        "w_final": w_per_epoch[-1] if w_per_epoch else None,
        **{f"val_{k}": v for k, v in (module.best_metrics or {}).items()},
    }
    write_json(out / "metrics.json", summary)
    return best, last, w_per_epoch


def train(cfg: Config) -> TrainResult:
    """One training run as cfg says; resumes from out_dir's checkpoint when train.resume=auto."""
    from sslmae.tracking.epoch_log import EpochLogger, log_train_end

    started = time.time()
    out = Path(cfg.train.out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = SSLDataModule(cfg)
    labels = datamodule.label_names
    module = SSLMAEModule(build_model(cfg, num_classes=len(labels)), cfg)
    accelerator, precision = resolve_hardware(cfg)
    maybe_compile(module.model, cfg, accelerator)
    ckpt = resume_path(cfg)
    with quiet_lightning():
        trainer = _trainer(cfg, accelerator, precision, out)

    def checkpoint(row: dict) -> None:
        if _checkpoint_due(cfg, row["epoch"]):
            save_atomic(trainer, last_checkpoint(out))

    module.epoch_end_hooks.append(checkpoint)
    tracker = EpochLogger(cfg, out, is_rank_zero=trainer.is_global_zero, resumed_from=ckpt)
    with tracker:
        module.epoch_end_hooks.append(tracker.log_epoch)
        with quiet_lightning():
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True if ckpt else None)
        seconds = time.time() - started
        if not trainer.is_global_zero:
            return TrainResult(out / "model.pt", out / "last.pt", module.best_metrics, module.best_epoch, [],
                               out / "history.csv", seconds, labels, rank_zero=False)
        best, last, w_per_epoch = _write_outputs(cfg, module, datamodule, labels, out, seconds)
        log_train_end(tracker, out)
    return TrainResult(best, last, module.best_metrics, module.best_epoch, w_per_epoch, out / "history.csv",
                       seconds, labels, tracker.run_id)
