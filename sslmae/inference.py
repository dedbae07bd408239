"""Scores of a model over a loader: the one inference loop evaluate, predict and
threshold tuning share."""

from __future__ import annotations

import numpy as np
import torch

from sslmae.augment.pixels import normalize
from sslmae.model.losses import probabilities
from sslmae.progress import progress
from sslmae.model.base import SSLMAE


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict_scores(model: SSLMAE, loader, device: torch.device | None = None,
                   desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> scores (N, C) probabilities, targets (N, C), in loader order. Batches: (uint8 imgs, y, ...).
    desc: show progress (batches) under this name."""
    device = device or default_device()
    was_training = model.training
    model.to(device).eval()
    scores, targets = [], []
    for imgs, y, *_ in (progress(loader, desc) if desc else loader):
        logits = model(normalize(imgs.to(device), model.pixel_mean, model.pixel_std, model.pixel_range))
        scores.append(probabilities(logits.float(), model.task).cpu())
        targets.append(y)
    model.train(was_training)
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()
