"""The paper's variant (SimMIM style): masked patch embeddings become one learnable mask
token, every token passes through the encoder, and SimMIM's 1x1-conv decoder reconstructs."""

from __future__ import annotations

import torch
from torch import nn

from sslmae.model.base import SSLMAE
from sslmae.model.simmim_decoder import SimMIMDecoder


class SimMIMSSLMAE(SSLMAE):
    def __init__(self, num_classes: int, **kw):
        super().__init__(num_classes, **kw)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder = SimMIMDecoder(self.embed_dim, self.patch_size, self.in_chans) if self.mode.reconstruct else None

    def encode_masked(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs (N, 3, H, W), mask (N, L) bool -> tokens (N, L, D), masked positions fed the mask token."""
        vit = self.encoder
        x = vit.patch_embed(imgs)
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x * (1 - m) + self.mask_token.to(x.dtype) * m
        x = vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))))
        return x[:, vit.num_prefix_tokens :]

    def train_outputs(self, imgs, mask):
        if mask is None:
            return self.classify(self.encode(imgs)), None
        tokens = self.encode_masked(imgs, mask)
        logits = self.classify(tokens, ~mask)  # the head sees the unmasked tokens only
        return logits, self.decoder(tokens) if self.decoder is not None else None
