"""Loss registries: reconstruction (on masked pixels) and classification (by task)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from sslmae.model.patches import patchify


def l1_masked(pred: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor, patch_size: int,
              band_weights: torch.Tensor | None = None) -> torch.Tensor:
    """SimMIM's loss: mean absolute error over the pixels of masked patches, every band.

    pred, target: (N, C, H, W);  pixel_mask: (N, 1, H, W), 1 is masked;  band_weights: (C,) or None
    (equal): the weighted mean over bands of each band's mean error.
    """
    err = (pred - target).abs() * pixel_mask
    if band_weights is None:
        return err.sum() / (pixel_mask.sum() * pred.shape[1]).clamp_min(1e-5)
    w = band_weights.to(err.dtype)
    return (err.sum(dim=(0, 2, 3)) * w).sum() / (pixel_mask.sum() * w.sum()).clamp_min(1e-5)


def mse_norm_pix(pred: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor, patch_size: int,
                 band_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' later code (src/models/mae/model.py:91-99 at 800df98): MSE against the target's
    per-patch normalised pixels, (t - mean) / (std + 1e-6) with the unbiased std, masked patches only.

    pred, target: (N, C, H, W);  pixel_mask: (N, 1, H, W), 1 is masked (whole patches);
    band_weights: (C,) or None (equal): each patch's error the weighted mean of its bands' errors."""
    p = patch_size
    t = patchify(target, p)  # (N, L, C*p*p), channel first within a patch
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True).sqrt() + 1e-6)
    sq = (patchify(pred, p) - t) ** 2
    if band_weights is None:
        err = sq.mean(-1)  # (N, L)
    else:
        w = band_weights.to(sq.dtype)
        err = (sq.unflatten(-1, (pred.shape[1], p * p)).mean(-1) * w).sum(-1) / w.sum()
    m = patchify(pixel_mask, p)[:, :, 0].to(err.dtype)  # (N, L): a patch's first pixel says
    return (err * m).sum() / m.sum().clamp_min(1e-5)


REC_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"l1": l1_masked, "mse_norm_pix": mse_norm_pix}

# model.rec_target: what the decoder reconstructs, from the encoder's (normalised) input and the
# augmented [0, 1] pixels it was made from. raw: the authors' `img_raw` (both of their code eras)
REC_TARGETS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "raw": lambda normalized, raw: raw,
    "normalized": lambda normalized, raw: normalized,  # SimMIM's own code
}


def _row_mean(per_row: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Mean of (N,) per-row losses over the rows where `rows` (N,) is 1; 0 when there are none.
    Weighting instead of selecting `x[labeled]` keeps shapes static: no host sync on the GPU."""
    if rows is None:
        return per_row.mean()
    rows = rows.to(per_row.dtype)
    return (per_row * rows).sum() / rows.sum().clamp_min(1.0)


def bce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label: sigmoid + binary cross-entropy, mean over the elements of the selected rows.
    logits, targets: (N, C); rows: (N,) 0/1 or None (all)."""
    per_row = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
    return _row_mean(per_row, rows)


def ce(logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-class: softmax + cross-entropy; targets one-hot (N, C); rows as in `bce`."""
    return _row_mean(F.cross_entropy(logits, targets.argmax(1), reduction="none"), rows)


CLS_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mlc": bce, "mcc": ce}


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mlc": torch.sigmoid,
    "mcc": lambda logits: torch.softmax(logits, dim=1),
}


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """(N, C) logits -> (N, C) scores: sigmoid for mlc, softmax for mcc."""
    return ACTIVATIONS[task](logits)
