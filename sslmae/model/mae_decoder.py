"""The MAE-style decoder of the `visible_only` extension (He et al. 2022): encoder tokens of
the visible patches are projected, mask tokens fill the masked positions, and a few
transformer blocks predict every patch's pixels."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from sslmae.model.masks import visible_index
from sslmae.model.patches import unpatchify


class MAEDecoder(nn.Module):
    """visible tokens (N, Lv, D) + mask (N, L) bool (True = masked) -> image (N, 3, H, W)."""

    def __init__(self, embed_dim: int, num_patches: int, patch_size: int, dim: int = 128, depth: int = 2,
                 heads: int = 4, in_chans: int = 3):
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, num_patches, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_size**2 * in_chans)
        self._rows_in_patch_order(patch_size, in_chans)
        trunc_normal_(self.pos, std=0.02)
        trunc_normal_(self.mask_token, std=0.02)

    @torch.no_grad()
    def _rows_in_patch_order(self, p: int, c: int) -> None:
        # The rows were drawn for the (i, j, c) order this decoder used before `unpatchify`'s (c, i, j);
        # reordering them keeps each pixel's initial weights, so a seed trains exactly as it did.
        order = torch.arange(p * p * c).reshape(p * p, c).T.reshape(-1)  # (c, i, j) -> its old (i, j, c) row
        self.pred.weight.copy_(self.pred.weight[order])
        self.pred.bias.copy_(self.pred.bias[order])

    def forward(self, visible: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length = mask.shape
        x = self.embed(visible)
        keep = visible_index(mask, x.shape[1]).unsqueeze(-1).expand(-1, -1, x.shape[-1])
        full = self.mask_token.to(x.dtype).expand(n, length, -1).scatter(1, keep, x)  # visible back in place
        x = self.norm(self.blocks(full + self.pos.to(x.dtype)))
        return unpatchify(self.pred(x), self.patch_size)  # (N, L, C*p*p) -> (N, C, H, W)
