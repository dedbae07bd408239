"""`train(cfg) -> TrainResult`: one SSL-MAE training run, callable from tests, CLI and DVC."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
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

ACCELERATORS = {"auto": lambda: "gpu" if torch.cuda.is_available() else "cpu", "cpu": lambda: "cpu",
                "gpu": lambda: "gpu", "cuda": lambda: "gpu"}
# bf16 autocast on GPU, full fp32 on CPU
AUTO_PRECISION = {"gpu": "bf16-mixed", "cpu": "32-true"}


# Lightning warnings that describe our deliberate choices, not problems
_EXPECTED_WARNINGS = (
    ".*does not have many workers.*",  # num_workers is a param; 0 is right for tiny data
    ".*overridden `on_after_batch_transfer`.*",  # augmentation lives in the module on purpose
    ".*LeafSpec.*",  # lightning 2.6 vs torch 2.14 deprecation inside lightning itself
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def _quiet_lightning_tips():
    """Drop Lightning's advertising line from the log for the duration of a fit."""
    # lightning routes rank-zero messages through whichever of these modules was set up last
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
             "lightning_utilities.core.rank_zero")
    loggers, f = [logging.getLogger(n) for n in names], _DropTips()
    for log in loggers:
        log.addFilter(f)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(f)


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


def resolve_hardware(cfg: Config) -> tuple[str, str]:
    accelerator = ACCELERATORS[cfg.train.accelerator]()
    precision = AUTO_PRECISION[accelerator] if cfg.train.precision == "auto" else cfg.train.precision
    if precision == "32":
        precision = "32-true"
    return accelerator, precision


def _trainer(cfg: Config, accelerator: str, precision: str, out: Path) -> L.Trainer:
    return L.Trainer(
        max_epochs=cfg.train.epochs,
        accelerator=accelerator,
        devices=cfg.train.devices,
        precision=precision,
        deterministic=cfg.train.deterministic and accelerator == "cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=cfg.train.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our batch samplers shard by rank themselves
        default_root_dir=str(out),
    )


def train(cfg: Config) -> TrainResult:
    """Train on cfg.data.dir with cfg.data.split_file; write model.pt, last.pt, history.csv
    and metrics.json to cfg.train.out_dir. Seeded, and deterministic on CPU."""
    started = time.time()
    out = Path(cfg.train.out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = SSLDataModule(cfg)
    labels = datamodule.label_names
    model = build_model(cfg, num_classes=len(labels))
    module = SSLMAEModule(model, cfg)
    accelerator, precision = resolve_hardware(cfg)
    with _quiet_lightning_tips():  # the tip is printed while the Trainer is built
        trainer = _trainer(cfg, accelerator, precision, out)
    with warnings.catch_warnings(), _quiet_lightning_tips():
        for pattern in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        trainer.fit(module, datamodule=datamodule)
    seconds = time.time() - started

    history = pd.DataFrame(module.history)
    first = [c for c in ("epoch", "train_loss", "train_l_rec", "train_l_cls", "w", "lr") if c in history]
    history = history[first + [c for c in history.columns if c not in first]]
    hist_path = out / "history.csv"
    with atomic_file(hist_path) as tmp:
        history.to_csv(tmp, index=False)
    last = save_model(out / "last.pt", model, cfg, labels, epoch=cfg.train.epochs - 1)
    model.load_state_dict(module.best_state)
    best = save_model(out / "model.pt", model, cfg, labels, epoch=module.best_epoch,
                      val_metrics=module.best_metrics or {})
    w_per_epoch = [float(v) for v in history["w"]] if "w" in history else []
    summary = {
        "best_epoch": module.best_epoch,
        "epochs": cfg.train.epochs,
        "train_seconds": round(seconds, 2),
        "w_final": w_per_epoch[-1] if w_per_epoch else None,
        **{f"val_{k}": v for k, v in (module.best_metrics or {}).items()},
    }
    write_json(out / "metrics.json", summary)
    return TrainResult(best, last, module.best_metrics, module.best_epoch, w_per_epoch, hist_path, seconds, labels)
