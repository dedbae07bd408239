"""The one patch layout every part uses (reconstruction losses, both decoders): an image cut into
p x p patches, row-major over the patch grid, each patch flattened channel first, (c, i, j) --
torch's pixel_unshuffle / pixel_shuffle order, which SimMIM's decoder is built on."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """imgs (N, C, H, W) -> patches (N, L, C*p*p), L = (H/p)*(W/p)."""
    return F.pixel_unshuffle(imgs, p).flatten(2).transpose(1, 2)


def unpatchify(patches: torch.Tensor, p: int) -> torch.Tensor:
    """patches (N, L, C*p*p) on a square grid -> imgs (N, C, sqrt(L)*p, sqrt(L)*p)."""
    n, length, d = patches.shape
    side = math.isqrt(length)
    grid = patches.transpose(1, 2).reshape(n, d, side, side)
    return F.pixel_shuffle(grid, p)
