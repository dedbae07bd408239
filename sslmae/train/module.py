"""LightningModule: batch augmentation, the joint loss, AdamW + warmup/cosine, validation."""

from __future__ import annotations

import copy
import math

import lightning as L
import numpy as np
import torch

from sslmae.config import Config, to_dict
from sslmae.data.augment import normalize, random_affine
from sslmae.metrics import PRIMARY, SUITES
from sslmae.model.losses import probabilities
from sslmae.model.network import SSLMAE

NO_DECAY = ("mask_token", "cls_token", "pos_embed", "reg_token")


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
        self._epoch_sums: dict[str, float] = {}
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
    def training_step(self, batch, batch_idx: int):
        imgs, targets, labeled = batch
        out = self.model.training_losses(imgs, targets, labeled)
        if not torch.isfinite(out["loss"]):
            raise FloatingPointError(
                f"non-finite loss at epoch {self.current_epoch} step {batch_idx}: "
                f"l_rec={out['l_rec'].item()} l_cls={out['l_cls'].item()}"
            )
        n = imgs.shape[0]
        for key in ("loss", "l_rec", "l_cls", "w"):
            self._epoch_sums[key] = self._epoch_sums.get(key, 0.0) + float(out[key].detach()) * n
        self._epoch_sums["n"] = self._epoch_sums.get("n", 0.0) + n
        self.log("loss", out["loss"].detach(), prog_bar=True, batch_size=n)
        self.log("w", out["w"].detach(), prog_bar=True, batch_size=n)
        return out["loss"]

    def on_train_epoch_end(self) -> None:
        keys = ("loss", "l_rec", "l_cls", "w", "n")
        sums = torch.tensor([self._epoch_sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:  # every rank saw its own shard: add them up
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        totals = dict(zip(keys, sums.tolist()))
        n = max(totals["n"], 1.0)
        row = {"epoch": self.current_epoch, "lr": self.optimizers().param_groups[0]["lr"],
               "train_images": int(totals["n"])}
        row.update({f"train_{k}": totals[k] / n for k in ("loss", "l_rec", "l_cls", "w")})
        row["w"] = float(self.model.weight().detach())
        self._epoch_sums = {}
        if self.history and self.history[-1]["epoch"] == self.current_epoch:
            self.history[-1].update(row)  # validation ran first and opened the row
        else:
            self.history.append(row)
        if not self._has_val():
            self._keep_best(row, metrics=None)
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
