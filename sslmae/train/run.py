"""`train(cfg) -> TrainResult`: one SSL-MAE training run, callable from tests, CLI, DVC and
Kubeflow. Each part is built from its own section of the config: the data module (`data`),
the network (`model`, `loss`), the LightningModule (`train`, `augment`), the MLflow logger
(`tracking`) and the resume check (`train.resume` against the checkpoint's params). Writes to
cfg.train.out_dir what `sslmae.train.export` lists, and

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

from sslmae.config import Config, to_dict
from sslmae.hardware import COMPILE, resolve_hardware
from sslmae.model.modes import MODES
from sslmae.model.variants import build_model
from sslmae.outputs import claim_folder, write_marker
from sslmae.redact import redacted
from sslmae.seen import image_hashes
from sslmae.tracking.runs import check_tracking
from sslmae.tracking.train_log import log_pretrained, log_train_end, log_train_start, train_logger
from sslmae.train.checkpoints import CHECKPOINT_DIR, AtomicCheckpointIO, LoaderPosition, checkpoint_callbacks
from sslmae.train.datamodule import SSLDataModule
from sslmae.train.export import export_run
from sslmae.train.history import EpochHistory
from sslmae.train.module import SSLMAEModule
from sslmae.train.pretrained import settle_pretrained
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


def _strategy(train) -> str:
    """DDP when more than one device or node; nccl on GPU, gloo on CPU (Lightning's choice)."""
    if train.strategy != "auto":
        return train.strategy
    return "ddp" if train.devices * train.num_nodes > 1 else "auto"


def _trainer(train, out: Path, callbacks: list, logger) -> L.Trainer:
    """train: the `train` section."""
    accelerator, precision = resolve_hardware(train.accelerator, train.precision)
    return L.Trainer(
        max_epochs=train.epochs, min_epochs=train.min_epochs, accelerator=accelerator,
        devices=train.devices, num_nodes=train.num_nodes, strategy=_strategy(train), precision=precision,
        deterministic=train.deterministic and accelerator == "cpu",
        callbacks=callbacks, logger=logger if logger is not None else False, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=train.progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
        check_val_every_n_epoch=train.val_every,
        use_distributed_sampler=False,  # our batch samplers shard by rank themselves (sslmae.loading.sampling)
        default_root_dir=str(out),
    )


def train(cfg: Config) -> TrainResult:
    """One training run as cfg says; resumes from out_dir's checkpoint when train.resume=auto."""
    started = time.time()
    t = cfg.train
    out = claim_folder(t.out_dir, "train", legacy=(f"{CHECKPOINT_DIR}/last.ckpt",))
    check_tracking(cfg.tracking)
    cfg, pretrained = settle_pretrained(cfg)  # fetched and checked before any data is read
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    params = redacted(to_dict(cfg))  # what checkpoints, MLflow and the resume check see
    datamodule = SSLDataModule(cfg.data, t.batch_size, MODES[cfg.loss.mode].unlabeled, cfg.seed,
                               cfg.evaluate.batch_size, unlabeled_ratio=t.unlabeled_ratio)
    accelerator, _ = resolve_hardware(t.accelerator, t.precision)
    model = build_model(cfg.model, cfg.loss, cfg.data.task, cfg.data.img_size, len(datamodule.label_names),
                        datamodule.bands())
    module = SSLMAEModule(model, t, cfg.augment, cfg.loss.w_lr, cfg.evaluate.threshold, params,
                          compiled=COMPILE[t.compile](accelerator))
    ckpt = resume_path(t.out_dir, t.resume, params)
    history = EpochHistory()
    last_ckpt, best_ckpt = checkpoint_callbacks(out, t.checkpoint_every, module.monitor, t.checkpoint_every_steps)
    callbacks = [history, LoaderPosition(), last_ckpt, best_ckpt]
    if t.early_stop_patience:  # the authors' rule: the validation loss stops improving
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=t.early_stop_patience))
    logger = train_logger(cfg.tracking, out, resumed=ckpt is not None)
    with quiet_lightning():
        trainer = _trainer(t, out, callbacks, logger)
        if trainer.is_global_zero:
            out.mkdir(parents=True, exist_ok=True)
            write_marker(out, "train")
            log_train_start(logger, params, cfg.data.dir, out, resumed=ckpt is not None,
                            composition=datamodule.composition() if logger is not None else None)
            log_pretrained(logger, pretrained)
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
    val_loader = datamodule.val_dataloader() or None
    done = export_run(module.model, cfg, datamodule.label_names, history, best_ckpt.best_model_path or None,
                      val_loader, out, seconds, module.device, trained_on=image_hashes(datamodule.seen_ids()),
                      pretrained=pretrained, sizes=datamodule.sizes())
    log_train_end(logger, cfg.tracking, out, datamodule.label_names, cfg.data.img_size)
    return TrainResult(done.model, done.last, done.val_metrics, done.epoch, done.w_per_epoch, done.history, seconds,
                       datamodule.label_names, logger.run_id if logger is not None else None)
