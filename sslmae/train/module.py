"""LightningModule: batch augmentation, the joint loss, AdamW + warmup/cosine, validation."""

from __future__ import annotations

import copy
import math
import time

import lightning as L
import numpy as np
import torch

from sslmae.config import Config, to_dict
from sslmae.data.augment import normalize, random_affine
from sslmae.metrics import PRIMARY, SUITES
from sslmae.model.losses import probabilities
from sslmae.model.network import SSLMAE

NO_DECAY = ("mask_token", "cls_token", "pos_embed", "reg_token")
STAT_KEYS = ("loss", "l_rec", "l_cls", "w")
# Losses stay on the device and are checked for NaN/inf in groups: a per-step check would make
# the host wait for the GPU every step. A diverged run still stops before its epoch checkpoint.
FINITE_CHECK_EVERY = 25


def warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    """LR multiplier: linear warmup to 1 over `warmup` steps, then cosine down to `floor`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class SSLMAEModule(L.LightningModule):
    def __init__(self, model: SSLMAE, cfg: Config):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.best_metrics: dict | None = None
        self.best_epoch = -1
        self._epoch_sums: torch.Tensor | None = None  # (len(STAT_KEYS),) sums weighted by rows, on device
        self._epoch_n = 0
        self._pending: list[tuple[int, torch.Tensor]] = []  # (batch_idx, loss) not yet checked
        self._epoch_clock: float | None = None
        self._val_scores: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        # called with the finished history row at each epoch end (checkpointing, tracking)
        self.epoch_end_hooks: list = []

    # -- data on device -------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        imgs, targets, labeled = batch
        x = normalize(imgs)
        if self.training:
            x = random_affine(x, self.cfg.data.crop_scale_min, self.cfg.data.flips)
        return x, targets, labeled

    # -- training -------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self._epoch_clock = time.perf_counter()

    def training_step(self, batch, batch_idx: int):
        imgs, targets, labeled = batch
        out = self.model.training_losses(imgs, targets, labeled)
        n = imgs.shape[0]
        stats = torch.stack([out[k].detach().double() for k in STAT_KEYS]) * n
        self._epoch_sums = stats if self._epoch_sums is None else self._epoch_sums + stats
        self._epoch_n += n
        self._pending.append((batch_idx, out["loss"].detach()))
        if len(self._pending) >= FINITE_CHECK_EVERY:
            self._check_finite()
        self.log("loss", out["loss"].detach(), prog_bar=True, batch_size=n)
        self.log("w", out["w"].detach(), prog_bar=True, batch_size=n)
        return out["loss"]

    def _check_finite(self) -> None:
        """Raise FloatingPointError naming the first step whose loss was NaN or infinite."""
        if not self._pending:
            return
        steps, losses = zip(*self._pending)
        self._pending = []
        bad = ~torch.isfinite(torch.stack(losses))
        if bad.any():  # the one host sync of the group
            i = int(bad.nonzero()[0, 0])
            raise FloatingPointError(f"non-finite loss at epoch {self.current_epoch} step {steps[i]}: {float(losses[i])}")

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        sums = torch.zeros(len(STAT_KEYS) + 1, dtype=torch.float64, device=self.device)
        if self._epoch_sums is not None:
            sums[:-1] = self._epoch_sums
        sums[-1] = self._epoch_n
        if self.trainer.world_size > 1:  # every rank saw its own shard: add them up
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        *totals, n_total = sums.tolist()
        n = max(n_total, 1.0)
        now = time.perf_counter()
        row = {"epoch": self.current_epoch, "lr": self.optimizers().param_groups[0]["lr"],
               "train_images": int(n_total),
               # since the previous epoch ended (its checkpoint included); the first: since fit start
               "epoch_seconds": round(now - (self._epoch_clock or now), 3)}
        self._epoch_clock = now
        row.update({f"train_{k}": t / n for k, t in zip(STAT_KEYS, totals)})
        row["w"] = float(self.model.weight().detach())
        self._epoch_sums, self._epoch_n = None, 0
        if self.history and self.history[-1]["epoch"] == self.current_epoch:
            self.history[-1].update(row)  # validation ran first and opened the row
        else:
            self.history.append(row)
        validated = f"val_{PRIMARY[self.cfg.data.task]}" in self.history[-1]
        if not self._has_val() or (not validated and self.best_metrics is None):
            self._keep_best(row, metrics=None)  # no validation (yet): the latest epoch stands in
        for hook in self.epoch_end_hooks:
            hook(self.history[-1])

    # -- resumable state beyond weights and optimiser ----------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sslmae"] = {
            "history": self.history, "best_state": self.best_state, "best_metrics": self.best_metrics,
            "best_epoch": self.best_epoch, "torch_rng": torch.get_rng_state(), "config": to_dict(self.cfg),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["sslmae"]
        self.history = list(state["history"])
        self.best_state, self.best_metrics = state["best_state"], state["best_metrics"]
        self.best_epoch = state["best_epoch"]
        torch.set_rng_state(state["torch_rng"])  # masks and augmentation continue as uninterrupted

    # -- validation -----------------------------------------------------------------
    def _has_val(self) -> bool:
        return bool(self.trainer.num_val_batches) and sum(self.trainer.num_val_batches) > 0

    def validation_step(self, batch, batch_idx: int):
        imgs, targets, _ = batch
        scores = probabilities(self.model(imgs).float(), self.cfg.data.task)
        self._val_scores.append(scores.detach().cpu())
        self._val_targets.append(targets.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = torch.cat(self._val_scores).numpy()
        targets = torch.cat(self._val_targets).numpy()
        self._val_scores, self._val_targets = [], []
        metrics = SUITES[self.cfg.data.task](targets, scores, self.cfg.evaluate.threshold)
        primary = PRIMARY[self.cfg.data.task]
        # every rank scored the whole validation subset: the mean over ranks is the same value
        self.log(f"val_{primary}", metrics[primary], prog_bar=True, sync_dist=True)
        row = {"epoch": self.current_epoch, **{f"val_{k}": v for k, v in metrics.items()}}
        if self.history and self.history[-1]["epoch"] == self.current_epoch:
            self.history[-1].update(row)
        else:
            self.history.append(row)
        self._keep_best(row, metrics)

    def _keep_best(self, row: dict, metrics: dict | None) -> None:
        """Model selection: best validation primary metric (ties: later epoch); no val: last."""
        if metrics is not None:
            value = metrics[PRIMARY[self.cfg.data.task]]
            best = -np.inf if self.best_metrics is None else self.best_metrics[PRIMARY[self.cfg.data.task]]
            if not (value >= best or np.isnan(best)):
                return
        self.best_metrics = metrics
        self.best_epoch = self.current_epoch
        self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})

    # -- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        t = self.cfg.train
        decay, no_decay, w_params = [], [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("weight."):
                w_params.append(p)
            elif p.ndim <= 1 or any(k in name for k in NO_DECAY):
                no_decay.append(p)
            else:
                decay.append(p)
        groups = [
            {"params": decay, "weight_decay": t.weight_decay, "lr": t.lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": t.lr},
        ]
        if w_params:  # the learnable loss weight has its own learning rate
            groups.append({"params": w_params, "weight_decay": 0.0, "lr": self.cfg.loss.w_lr})
        fused = self.device.type == "cuda"
        opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), fused=fused)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        warmup = int(round(t.warmup_epochs * per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total, t.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
