"""Pixels on the device: the loader's values -> [0, 1] floats (the reconstruction target) -> the
encoder's normalised input. 8-bit RGB is divided by 255; a dataset's bands (sslmae.bands) are
stretched per band between their training 2 % and 98 % percentiles and clipped."""

from __future__ import annotations

import torch

# ImageNet statistics: what most timm ViTs (and pretrained weights) expect; the default.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _per_channel(values, x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)


def to_unit(imgs: torch.Tensor, unit_range=None) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, H, W) in [0, 1]; with `unit_range` ((lo (C,), hi (C,)): a
    model's `pixel_range`), float (N, C, H, W) source values -> (x - lo) / (hi - lo), clipped to [0, 1]."""
    if unit_range is None:
        return imgs.float().div_(255.0)
    x = imgs.float()
    lo, hi = _per_channel(unit_range[0], x), _per_channel(unit_range[1], x)
    return x.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)


def normalize(imgs: torch.Tensor, mean=MEAN, std=STD, unit_range=None) -> torch.Tensor:
    """The loader's images (uint8 RGB, or a dataset's bands with their `unit_range`) or floats already
    in [0, 1] -> float (N, C, H, W), normalised with the per-channel mean and std (C,) the encoder
    expects (ImageNet's by default; a model's `pixel_mean` / `pixel_std`)."""
    x = to_unit(imgs, unit_range) if imgs.dtype == torch.uint8 or unit_range is not None else imgs
    return (x - _per_channel(mean, x)) / _per_channel(std, x)
