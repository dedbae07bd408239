"""LightningModule: batch augmentation on the device, the joint loss, AdamW with warmup and
cosine decay, validation metrics. What Lightning provides is used as it is: checkpoints and
best weights are ModelCheckpoint callbacks (`sslmae.train.checkpointing`), the history and
MLflow are a callback and a logger (`sslmae.train.history`, `sslmae.tracking.train_log`)."""

from __future__ import annotations

import math

import lightning as L
import torch

from sslmae.config import Config, to_dict
from sslmae.data.augment import normalize, random_affine
from sslmae.metrics import PRIMARY, SUITES
from sslmae.model.base import SSLMAE
from sslmae.model.losses import probabilities

NO_DECAY = ("mask_token", "cls_token", "pos_embed", "reg_token")
STAT_KEYS = ("loss", "l_rec", "l_cls")
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
    """model: the network; compiled: torch.compile its training step and its inference pass
    (wrapping the bound methods: the model, its methods and its state_dict keys stay as they are)."""

    def __init__(self, model: SSLMAE, cfg: Config, compiled: bool = False):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.step_fn = torch.compile(model.training_losses) if compiled else model.training_losses
        self.infer_fn = torch.compile(model.forward) if compiled else model.forward
        self.monitor = f"val_{PRIMARY[cfg.data.task]}"
        self._pending: list[tuple[int, torch.Tensor]] = []  # (batch_idx, loss) not yet checked
        self._val_scores: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    # -- data on device -------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        imgs, targets, labeled = batch
        x = normalize(imgs)
        if self.training:
            x = random_affine(x, self.cfg.data.crop_scale_min, self.cfg.data.flips)
        return x, targets, labeled

    # -- training -------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int):
        imgs, targets, labeled = batch
        out = self.step_fn(imgs, targets, labeled)
        n = imgs.shape[0]
        for key in STAT_KEYS:  # epoch means, accumulated on the device and reduced over ranks at epoch end
            self.log(f"train_{key}", out[key].detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True,
                     logger=False)
        self.log("loss", out["loss"].detach(), prog_bar=True, batch_size=n, logger=False)
        self.log("w", out["w"].detach(), prog_bar=True, batch_size=n, logger=False)
        self._pending.append((batch_idx, out["loss"].detach()))
        if len(self._pending) >= FINITE_CHECK_EVERY:
            self._check_finite()
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

    # -- resumable state beyond what Lightning saves ------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the config decides whether a later run may resume; the RNG continues masks and augmentation
        checkpoint["sslmae"] = {"config": to_dict(self.cfg), "torch_rng": torch.get_rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        torch.set_rng_state(checkpoint["sslmae"]["torch_rng"])

    # -- validation -----------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int):
        imgs, targets, _ = batch
        scores = probabilities(self.infer_fn(imgs).float(), self.cfg.data.task)
        self._val_scores.append(scores.detach().cpu())
        self._val_targets.append(targets.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = torch.cat(self._val_scores).numpy()
        targets = torch.cat(self._val_targets).numpy()
        self._val_scores, self._val_targets = [], []
        metrics = SUITES[self.cfg.data.task](targets, scores, self.cfg.evaluate.threshold)
        # every rank scored the whole validation subset: the mean over ranks is the same value
        for key, value in metrics.items():
            self.log(f"val_{key}", float(value), prog_bar=f"val_{key}" == self.monitor, sync_dist=True, logger=False)

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
        opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), fused=self.device.type == "cuda")
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        warmup = int(round(t.warmup_epochs * per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total, t.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
