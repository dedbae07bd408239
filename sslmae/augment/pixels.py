"""Pixels on the device: uint8 -> [0, 1] floats (the reconstruction target) -> the encoder's
normalised input."""

from __future__ import annotations

import torch

# ImageNet statistics: what most timm ViTs (and pretrained weights) expect; the default.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_unit(imgs: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, H, W) in [0, 1]."""
    return imgs.float().div_(255.0)


def normalize(imgs: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 (N, 3, H, W) or float in [0, 1] -> float (N, 3, H, W), normalised with the per-channel
    mean and std (3,) the encoder's weights expect (ImageNet's by default; a model's
    `pixel_mean` / `pixel_std`)."""
    x = to_unit(imgs) if imgs.dtype == torch.uint8 else imgs
    mean = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
