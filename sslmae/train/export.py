"""What a finished training run leaves in its out_dir, made by one function with a typed result:

    history.csv    per epoch: losses, w, lr, images seen, validation metrics
    last.pt        the last epoch's weights (model file)
    model.pt       the selected epoch's weights (train.select: best validated, or last), with the
                   per-class thresholds tuned on validation (mlc)
    metrics.json   the selected epoch's validation metrics, epochs, w, training time

The decisions (which epoch, which thresholds) are pure functions; `export_run` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sslmae.atomic import write_json
from sslmae.config import Config
from sslmae.inference import predict_scores
from sslmae.metrics.thresholds import tune_thresholds
from sslmae.model.base import SSLMAE
from sslmae.train.checkpoints import best_weights
from sslmae.train.history import EpochHistory
from sslmae.train.model_file import save_model


@dataclass(frozen=True)
class Exported:
    model: Path  # model.pt: the selected epoch's weights
    last: Path  # last.pt
    history: Path
    metrics: Path
    epoch: int  # the selected epoch
    val_metrics: dict | None  # its validation metrics (None: never validated)
    w_per_epoch: list[float]
    thresholds: list[float] | None  # per class, tuned on validation (mlc with a validation subset)


def selected_epoch(select: str, last_epoch: int, best_epoch: int | None) -> int:
    """train.select: 'best' takes the best validated epoch when there is one, else (and for
    'last') the last epoch trained."""
    return best_epoch if select == "best" and best_epoch is not None else last_epoch


def export_run(model: SSLMAE, cfg: Config, label_names: list[str], history: EpochHistory, best_path: str | None,
               val_loader, out: Path, seconds: float, device: torch.device,
               trained_on: np.ndarray | None = None, pretrained: dict[str, str] | None = None,
               sizes: dict[str, int] | None = None) -> Exported:
    """Write the run's files (module docstring). model: the network as training left it (its
    weights become the selected epoch's); best_path: the best-weights checkpoint, if any;
    val_loader: the validation batches, or None when there is no validation subset; sizes: what
    the run trained on, for metrics.json (labeled and pool images, where the data has a pool); trained_on:
    (K,) uint64 image hashes (sslmae.seen) of the labeled, unlabeled and validation images, kept
    in both model files (meta `trained_on`, int64 bits) so the promotion gate can check overlap;
    pretrained: the starting weights' provenance (sslmae.train.pretrained), meta `pretrained` of both."""
    history.write(out / "history.csv")
    last_epoch = history.rows[-1]["epoch"]  # early stopping may end before train.epochs
    seen = {} if trained_on is None else {"trained_on": torch.from_numpy(trained_on.view(np.int64).copy())}
    if pretrained:
        seen["pretrained"] = dict(pretrained)
    last = save_model(out / "last.pt", model, cfg, label_names, epoch=last_epoch, **seen)
    best_epoch, weights = best_weights(best_path) if cfg.train.select == "best" and best_path else (None, None)
    epoch = selected_epoch(cfg.train.select, last_epoch, best_epoch)
    if weights is not None:
        model.load_state_dict(weights)
    val_metrics = history.validation(epoch)
    thresholds = None
    if cfg.data.task == "mlc" and val_loader is not None:
        scores, y = predict_scores(model, val_loader, device)
        thresholds = tune_thresholds(y, scores, cfg.evaluate.threshold)
    best = save_model(out / "model.pt", model, cfg, label_names, epoch=epoch, val_metrics=val_metrics or {},
                      thresholds=thresholds, **seen)
    w_per_epoch = [float(r["w"]) for r in history.rows]
    write_json(out / "metrics.json", {
        "best_epoch": epoch, "epochs": cfg.train.epochs, "epochs_run": last_epoch + 1,
        "train_seconds": round(seconds, 2), "w_final": w_per_epoch[-1] if w_per_epoch else None,
        **(sizes or {}), **{f"val_{k}": v for k, v in (val_metrics or {}).items()}})
    return Exported(best, last, out / "history.csv", out / "metrics.json", epoch, val_metrics, w_per_epoch, thresholds)
