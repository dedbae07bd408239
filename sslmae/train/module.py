"""LightningModule: batch augmentation on the device, the joint loss, AdamW with warmup and
cosine decay, validation metrics. What Lightning provides is used as it is: checkpoints and
best weights are ModelCheckpoint callbacks (`sslmae.train.checkpoints`), the history and
MLflow are a callback and a logger (`sslmae.train.history`, `sslmae.tracking.train_log`)."""

from __future__ import annotations

import math

import lightning as L
import torch

from sslmae.config import Config, to_dict
from sslmae.augment.batch import augment_batch
from sslmae.augment.pixels import normalize, to_unit
from sslmae.augment.streams import StreamAugment
from sslmae.metrics import PRIMARY, SUITES
from sslmae.model.base import SSLMAE
from sslmae.model.losses import CLS_LOSSES, probabilities
from sslmae.model.optim import param_groups

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
    """model: the network; train: the `train` section (optimiser and schedule); augment: the
    `augment` section; w_lr: the learnable w's learning rate (loss.w_lr); threshold: validation
    metrics' decision threshold (evaluate.threshold); params: the run's whole config as a dict,
    stored in every checkpoint so that a later run knows whether it may resume;
    compiled: torch.compile its training step and its inference pass (wrapping the bound methods:
    the model, its methods and its state_dict keys stay as they are)."""

    def __init__(self, model: SSLMAE, train: TrainConfig, augment: AugmentConfig, w_lr: float, threshold: float,
                 params: dict, compiled: bool = False):
        super().__init__()
        self.model, self.optim, self.w_lr, self.threshold, self.params = model, train, w_lr, threshold, params
        self.step_fn = torch.compile(model.training_losses) if compiled else model.training_losses
        self.infer_fn = torch.compile(model.forward) if compiled else model.forward
        self.monitor = f"val_{PRIMARY[model.task]}"
        self.streams = (augment.labeled, augment.unlabeled)
        self._pending: list[tuple[int, torch.Tensor]] = []  # (batch_idx, loss) not yet checked
        self._sums: torch.Tensor | None = None  # this epoch: sum of loss, l_rec, l_cls (x images), images
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    # -- data on device -------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """(uint8 imgs, targets, labeled) -> (normalised input, its [0, 1] pixels, targets, labeled);
        in training each row augmented as its stream says."""
        imgs, targets, labeled = batch
        raw = to_unit(imgs, self.model.pixel_range)
        if self.training:
            raw = augment_batch(raw, labeled, *self.streams, rgb=self.model.bands is None)
        return normalize(raw, self.model.pixel_mean, self.model.pixel_std), raw, targets, labeled

    # -- training -------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int):
        imgs, raw, targets, labeled = batch
        out = self.step_fn(imgs, targets, labeled, raw=raw)
        n = imgs.shape[0]
        # epoch means, accumulated on the device (no host sync), kept in checkpoints, reduced over ranks
        if self._sums is None or self._sums.device != imgs.device:
            self._sums = (self._sums if self._sums is not None else torch.zeros(len(STAT_KEYS) + 1,
                                                                                 dtype=torch.float64)).to(imgs.device)
        self._sums += torch.stack([out[k].detach().double() * n for k in STAT_KEYS] + [imgs.new_tensor(n).double()])
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

    def epoch_means(self) -> dict[str, float]:
        """train_loss, train_l_rec, train_l_cls: means over this epoch's images on every rank."""
        sums = self._sums if self._sums is not None else torch.zeros(len(STAT_KEYS) + 1, dtype=torch.float64)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums.clone(), reduce_op="sum")
        count = float(sums[-1]) or 1.0
        return {f"train_{k}": float(v) / count for k, v in zip(STAT_KEYS, sums[:-1])}

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        self._sums = None  # the history callback has read them (callbacks run first); checkpoints after

    # -- resumable state beyond what Lightning saves ------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the config decides whether a later run may resume; the RNG continues masks and augmentation
        # (and, for a mid-epoch checkpoint, this epoch's sums so far)
        state = {"config": self.params, "torch_rng": torch.get_rng_state(),
                 "epoch_sums": self._sums.detach().cpu() if self._sums is not None else None}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint["sslmae"] = state

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["sslmae"]
        self._sums = state.get("epoch_sums")
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    # -- validation -----------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int):
        imgs, _, targets, _ = batch
        self._val_logits.append(self.infer_fn(imgs).float().detach().cpu())
        self._val_targets.append(targets.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            return
        task = self.model.task
        logits, targets = torch.cat(self._val_logits), torch.cat(self._val_targets).float()
        self._val_logits, self._val_targets = [], []
        scores = probabilities(logits, task).numpy()
        metrics = SUITES[task](targets.numpy(), scores, self.threshold)
        # the classification loss on validation, unmasked: what the authors' early stopping watches
        metrics["loss"] = float(CLS_LOSSES[task](logits, targets))
        # every rank scored the whole validation subset: the mean over ranks is the same value
        for key, value in metrics.items():
            self.log(f"val_{key}", float(value), prog_bar=f"val_{key}" == self.monitor, sync_dist=True, logger=False)

    # -- optimisation ---------------------------------------------------------------
    def configure_optimizers(self):
        t = self.optim
        groups = param_groups(self.model, t.lr, t.weight_decay, self.w_lr, t.weight_decay_on)
        opt = torch.optim.AdamW(groups, betas=tuple(t.betas), fused=self.device.type == "cuda")
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        warmup = int(round(t.warmup_epochs * per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total, t.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
