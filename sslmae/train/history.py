"""The per-epoch history of a run, as a Lightning callback: one row per epoch with the train
means the module kept (train_loss, train_l_rec, train_l_cls), the validation metrics when
that epoch was validated, w, lr, images seen and wall time. Rows travel in the checkpoint
(callback state), so a resumed run keeps the rows before the kill, and each finished row is
sent to the trainer's loggers (MLflow) with step = epoch."""

from __future__ import annotations

import math
import sys
import time

import lightning as L
import pandas as pd
import torch

from sslmae.atomic import atomic_file
from sslmae.loading.sampling import labeled_rows

FIRST_COLUMNS = ("epoch", "train_loss", "train_l_rec", "train_l_cls", "w", "lr", "train_images",
                 "train_labeled_images", "train_unlabeled_images")


def _number(value) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


class EpochHistory(L.Callback):
    def __init__(self):
        self.rows: list[dict] = []
        self._val: dict | None = None
        self._images = 0
        self._labeled = 0  # of _images: the rest are unlabeled (the pool, or labels the split hides)
        self._clock: float | None = None

    @property
    def state_key(self) -> str:
        return "EpochHistory"

    def state_dict(self) -> dict:
        return {"rows": self.rows, "images": self._images, "labeled": self._labeled}  # so far: a mid-epoch checkpoint

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])
        self._images = int(state.get("images", 0))
        self._labeled = int(state.get("labeled", self._images))

    def on_train_start(self, trainer, pl_module) -> None:
        self._clock = time.perf_counter()
        self._first = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rows = len(batch[1])  # host-side counts: no device sync
        self._images += rows
        dm = trainer.datamodule
        self._labeled += labeled_rows(rows, dm.unlabeled_ratio if getattr(dm, "unlabeled", False) else None)
        if getattr(self, "_first", False) and trainer.is_global_zero:  # how long the data took to arrive
            self._first = False
            print(f"train: first step done {time.perf_counter() - self._clock:.1f} s after the start of fit",
                  file=sys.stderr, flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._val = {k: _number(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        now = time.perf_counter()
        images, labeled = self._images, self._labeled
        if trainer.world_size > 1:  # ranks take equally many batches, not equally many images
            both = trainer.strategy.reduce(torch.tensor([float(images), float(labeled)], device=pl_module.device),
                                           reduce_op="sum")
            images, labeled = (int(v) for v in both.tolist())
        row = {"epoch": trainer.current_epoch, "lr": trainer.optimizers[0].param_groups[0]["lr"],
               "train_images": images, "train_labeled_images": labeled, "train_unlabeled_images": images - labeled,
               # since the previous epoch ended (its checkpoint included); the first: since fit start
               "epoch_seconds": round(now - (self._clock or now), 3),
               **pl_module.epoch_means(),
               "w": _number(pl_module.model.weight().detach())}
        row.update(self._val or {})  # this epoch's validation ran before its train epoch end
        self._val, self._images, self._labeled, self._clock = None, 0, 0, now
        self.rows.append(row)
        finite = {k: float(v) for k, v in row.items() if k != "epoch" and math.isfinite(float(v))}
        for logger in trainer.loggers:
            logger.log_metrics(finite, step=row["epoch"])

    def validation(self, epoch: int) -> dict | None:
        """The validation metrics of `epoch` ({'macro_auprc': ...}), None if it was not validated."""
        for row in self.rows:
            if row["epoch"] == epoch:
                found = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
                return found or None
        return None

    def frame(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        first = [c for c in FIRST_COLUMNS if c in table]
        return table[first + [c for c in table.columns if c not in first]]

    def write(self, path) -> None:
        with atomic_file(path) as tmp:
            self.frame().to_csv(tmp, index=False)
