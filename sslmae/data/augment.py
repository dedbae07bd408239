"""Batch augmentation and normalisation on the training device.

One affine warp per image does random-resized-crop, flips and 90-degree rotations at once
(aerial scenes have no canonical orientation), for a whole batch in one grid_sample call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ImageNet statistics: what timm's ViTs (and pretrained weights) expect.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(imgs: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, H, W), ImageNet-normalised."""
    x = imgs.float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def random_affine(
    x: torch.Tensor,
    scale_min: float = 0.6,
    flips: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x: (N, C, H, W) float -> same shape; per-image crop of area in [scale_min, 1],
    aspect ratio in [3/4, 4/3], random position, flips and 90-degree turns."""
    n, device = x.shape[0], x.device

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)

    area = u(scale_min, 1.0)
    log_r = u(math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_r)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop half-extent, in [-1, 1] coordinates
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (1 - sx) * u(-1.0, 1.0)
    ty = (1 - sy) * u(-1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    if flips:
        fx = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
        fy = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
        lin = theta[:, :, :2] * torch.stack([fx, fy], 1)[:, None, :]
        swap = torch.rand(n, device=device, generator=generator) < 0.5  # transpose: with flips, all 8 turns
        lin = torch.where(swap[:, None, None], lin.flip(2), lin)
        theta[:, :, :2] = lin
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
