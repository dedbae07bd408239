"""Random patch masks, generated in batches on the model's device (SimMIM style).

A mask is drawn on a grid of `mask_patch_size` cells, the same number of them masked in every
image (`MASK_COUNTS[count](ratio * cells)`: ceil, as the authors' MaskGenerator, or round),
then upsampled to the model's patch grid. Convention: 1 is masked.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

# model.mask_count: how ratio * cells becomes a whole number of masked cells
MASK_COUNTS: dict[str, Callable[[float], int]] = {
    "ceil": lambda v: int(math.ceil(v)),  # the authors' int(np.ceil(token_count * mask_ratio))
    "round": lambda v: int(round(v)),
}


def masked_cells(img_size: int, mask_patch_size: int, ratio: float, count: str = "ceil") -> int:
    """How many mask cells every image has masked: a static count, the same for each row."""
    return MASK_COUNTS[count](ratio * (img_size // mask_patch_size) ** 2)


def visible_count(img_size: int, patch_size: int, mask_patch_size: int, ratio: float, count: str = "ceil") -> int:
    """Patches left visible per image by `random_patch_mask` with these arguments."""
    scale = mask_patch_size // patch_size
    return (img_size // patch_size) ** 2 - masked_cells(img_size, mask_patch_size, ratio, count) * scale**2


def visible_index(mask: torch.Tensor, n_visible: int) -> torch.Tensor:
    """(N, L) bool mask with `n_visible` False per row -> (N, n_visible) long positions of the
    visible patches, in patch order. A gather index instead of `x[~mask]`: boolean indexing has
    a data-dependent shape, which stalls the GPU on a host sync and breaks torch.compile graphs."""
    return torch.argsort(mask.to(torch.int32), dim=1, stable=True)[:, :n_visible]


def random_patch_mask(
    n: int,
    img_size: int,
    patch_size: int,
    mask_patch_size: int,
    ratio: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    count: str = "ceil",
) -> torch.Tensor:
    """mask: (n, L) bool with L = (img_size // patch_size)**2 patches; True is masked."""
    if mask_patch_size % patch_size or img_size % mask_patch_size:
        raise ValueError(
            f"mask_patch_size ({mask_patch_size}) must be a multiple of patch_size ({patch_size}) "
            f"and divide img_size ({img_size})"
        )
    cells_side = img_size // mask_patch_size
    cells = cells_side**2
    k = masked_cells(img_size, mask_patch_size, ratio, count)
    scores = torch.rand(n, cells, device=device, generator=generator)
    order = scores.argsort(dim=1)
    coarse = torch.zeros(n, cells, dtype=torch.bool, device=device)
    coarse.scatter_(1, order[:, :k], True)
    scale = mask_patch_size // patch_size
    grid = coarse.view(n, cells_side, cells_side)
    grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return grid.reshape(n, -1)


def mask_to_pixels(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, L) patch mask -> (N, 1, H, W) pixel mask of the same dtype."""
    n, length = mask.shape
    side = int(round(length**0.5))
    grid = mask.view(n, 1, side, side)
    return grid.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
