"""The `visible_only` extension (MAE style, He et al. 2022; not the paper's method): masked
patches are dropped before the encoder, which sees only the visible ones, and a small
transformer decoder puts mask tokens back and reconstructs every patch."""

from __future__ import annotations

import torch

from sslmae.model.masks import visible_index
from sslmae.model.base import SSLMAE
from sslmae.model.mae_decoder import MAEDecoder


class VisibleOnlySSLMAE(SSLMAE):
    def __init__(self, num_classes: int, decoder_dim: int = 128, decoder_depth: int = 2, **kw):
        super().__init__(num_classes, **kw)
        self.decoder = (MAEDecoder(self.embed_dim, self.num_patches, self.patch_size, decoder_dim, decoder_depth,
                                   in_chans=self.in_chans)
                        if self.mode.reconstruct else None)

    @classmethod
    def kwargs_from(cls, model, loss) -> dict:
        return {**super().kwargs_from(model, loss), "decoder_dim": model.decoder_dim,
                "decoder_depth": model.decoder_depth}

    def encode_visible(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs (N, 3, H, W), mask (N, L) from `draw_mask` (`num_visible` False per row) ->
        tokens of the visible patches only (N, Lv, D), in patch order."""
        vit = self.encoder
        x = vit.patch_embed(imgs)
        prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens  # pos_embed may cover the class token
        x = x + vit.pos_embed[:, prefix:].to(x.dtype)
        n, _, d = x.shape
        keep = visible_index(mask, self.num_visible).unsqueeze(-1).expand(-1, -1, d)
        x = torch.gather(x, 1, keep)  # dropping masked patches is where the speed comes from
        if vit.cls_token is not None:
            cls = vit.cls_token if vit.no_embed_class else vit.cls_token + vit.pos_embed[:, :1]
            x = torch.cat([cls.to(x.dtype).expand(n, -1, -1), x], dim=1)
        x = vit.norm(vit.blocks(vit.norm_pre(x)))
        return x[:, vit.num_prefix_tokens :]

    def train_outputs(self, imgs, mask):
        if mask is None:
            return self.classify(self.encode(imgs)), None
        visible = self.encode_visible(imgs, mask)
        logits = self.classify(visible)  # every token it has is visible
        return logits, self.decoder(visible, mask) if self.decoder is not None else None
