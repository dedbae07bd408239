"""SimMIM's lightweight decoder: a 1x1 convolution to p*p*3 channels per token, then the
patches back in place (`sslmae.model.patches.unpatchify`: a pixel shuffle)."""

from __future__ import annotations

import torch
from torch import nn

from sslmae.model.patches import unpatchify


class SimMIMDecoder(nn.Module):
    """tokens (N, L, D) on an (h, w) grid -> image (N, 3, h*p, w*p)."""

    def __init__(self, embed_dim: int, patch_size: int, in_chans: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(embed_dim, patch_size**2 * in_chans, kernel_size=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, length, d = tokens.shape
        side = int(round(length**0.5))
        grid = tokens.transpose(1, 2).reshape(n, d, side, side).contiguous()  # DDP wants dense grads
        return unpatchify(self.proj(grid).flatten(2).transpose(1, 2), self.patch_size)
