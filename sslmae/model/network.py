"""The SSL-MAE network (Stoimchev et al., IEEE JSTARS 2025), SimMIM style.

    imgs (N, 3, H, W) --patch embed--> (N, L, D) --masked -> mask token--> ViT blocks
      -> tokens (N, L, D) --SimMIM decoder--> recon (N, 3, H, W)   L_rec on masked pixels
      -> mean of *unmasked* tokens of *labeled* rows --fc--> logits (N_lab, C)   L_cls
    L = (1 - w) * L_rec + w * L_cls

Mask convention: (N, L) bool, True is masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sslmae.data.masks import mask_to_pixels, random_patch_mask, visible_count, visible_index
from sslmae.model.backbone import build_encoder, load_pretrained
from sslmae.model.decoder import SimMIMDecoder
from sslmae.model.mae_decoder import MAEDecoder
from sslmae.model.losses import CLS_LOSSES, REC_LOSSES
from sslmae.model.weight import LossWeight


@dataclass(frozen=True)
class Mode:
    """What a training mode uses: the unlabeled pool, and the reconstruction term."""

    unlabeled: bool
    reconstruct: bool


MODES: dict[str, Mode] = {
    "semi_supervised": Mode(unlabeled=True, reconstruct=True),
    "supervised": Mode(unlabeled=False, reconstruct=True),
    "supervised_baseline": Mode(unlabeled=False, reconstruct=False),
}


class SSLMAE(nn.Module):
    def __init__(
        self,
        num_classes: int,
        task: str = "mlc",
        mode: str = "semi_supervised",
        size: str = "mini",
        encoder: str = "simmim",
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        img_size: int = 64,
        patch_size: int = 8,
        mask_ratio: float = 0.6,
        mask_patch_size: int = 16,
        rec_loss: str = "l1",
        w: float = 0.5,
        learn_w: bool = False,
        drop_path: float = 0.0,
        pretrained: str | None = None,
    ):
        super().__init__()
        self.task, self.mode = task, MODES[mode]
        self.img_size, self.patch_size = img_size, patch_size
        self.mask_ratio, self.mask_patch_size = mask_ratio, mask_patch_size
        self.rec_loss, self.cls_loss = REC_LOSSES[rec_loss], CLS_LOSSES[task]
        self.variant = encoder
        self.encoder = build_encoder(size, img_size, patch_size, drop_path)
        if pretrained:
            load_pretrained(self.encoder, pretrained)
        dim = self.encoder.embed_dim
        if encoder == "simmim":  # visible_only never shows the encoder a masked position
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        decoders = {"simmim": lambda: SimMIMDecoder(dim, patch_size),
                    "visible_only": lambda: MAEDecoder(dim, self.num_patches, patch_size, decoder_dim, decoder_depth)}
        self.decoder = decoders[encoder]() if self.mode.reconstruct else None
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        # the baseline has no reconstruction term, so its objective is L_cls alone (w = 1)
        self.weight = LossWeight(w if self.mode.reconstruct else 1.0, learn_w and self.mode.reconstruct)

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    def encode(self, imgs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """imgs (N, 3, H, W), mask (N, L) bool or None -> patch tokens (N, L, D)."""
        vit = self.encoder
        x = vit.patch_embed(imgs)
        if mask is not None:
            m = mask.unsqueeze(-1).to(x.dtype)
            x = x * (1 - m) + self.mask_token.to(x.dtype) * m
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        x = vit.norm(x)
        return x[:, vit.num_prefix_tokens :]

    @property
    def num_visible(self) -> int:
        """Patches each row keeps visible under `draw_mask` (a static count)."""
        return visible_count(self.img_size, self.patch_size, self.mask_patch_size, self.mask_ratio)

    def encode_visible(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """visible_only: imgs (N, 3, H, W), mask (N, L) from `draw_mask` (`num_visible` False
        per row) -> tokens of the visible patches only (N, Lv, D), in patch order."""
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

    def classify(self, tokens: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (N, L, D), visible (N, L) bool or None (all) -> logits (N, C): mean-pool + fc."""
        if visible is None:
            pooled = tokens.mean(1)
        else:
            v = visible.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * v).sum(1) / v.sum(1).clamp_min(1.0)
        return self.head(pooled)

    def compile_paths(self) -> None:
        """torch.compile, in place, the training step as one graph (masks, encoder, decoder, both
        losses: no data-dependent shapes, so no graph breaks) and the inference encoder.
        The state_dict keys stay as they are."""
        self.training_losses = torch.compile(self.training_losses)
        self.encode = torch.compile(self.encode)

    def draw_mask(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        return random_patch_mask(
            n, self.img_size, self.patch_size, self.mask_patch_size, self.mask_ratio, device, generator
        )

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """Inference: imgs (N, 3, H, W) -> logits (N, C), no masking, all tokens pooled."""
        return self.classify(self.encode(imgs))

    def training_losses(
        self,
        imgs: torch.Tensor,
        targets: torch.Tensor,
        labeled: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The joint objective for one batch.

        imgs (N, 3, H, W) normalised; targets (N, C) 0/1 (ignored where not labeled);
        labeled (N,) bool; mask (N, L) bool, drawn here when None and the mode reconstructs.
        Returns loss, l_rec, l_cls, w (0-dim tensors) and recon (N, 3, H, W) or None.
        """
        if self.mode.reconstruct:
            if mask is None:
                mask = self.draw_mask(imgs.shape[0], imgs.device)
        else:
            mask = None
        if mask is not None and self.variant == "visible_only":
            return self._visible_only_losses(imgs, targets, labeled, mask)
        tokens = self.encode(imgs, mask)
        zero = imgs.new_zeros(())
        # every row goes through the (tiny) head; the loss weighs labeled rows only, so shapes
        # stay static and the GPU never waits on the host for a count of labeled rows
        logits = self.classify(tokens, None if mask is None else ~mask)
        l_cls = self.cls_loss(logits.float(), targets.float(), labeled)
        w = self.weight()
        if self.mode.reconstruct:
            recon = self.decoder(tokens)
            pixel_mask = mask_to_pixels(mask, self.patch_size).float()
            l_rec = self.rec_loss(recon.float(), imgs.float(), pixel_mask, self.patch_size)
            loss = (1 - w) * l_rec + w * l_cls
        else:
            recon, l_rec, loss = None, zero, l_cls
        return {"loss": loss, "l_rec": l_rec, "l_cls": l_cls, "w": w, "recon": recon}

    def _visible_only_losses(self, imgs, targets, labeled, mask) -> dict[str, torch.Tensor]:
        """The same objective with the MAE-style encoder: the head pools the (visible) tokens
        of labeled rows, the decoder reconstructs the masked ones."""
        visible = self.encode_visible(imgs, mask)
        l_cls = self.cls_loss(self.classify(visible).float(), targets.float(), labeled)
        recon = self.decoder(visible, mask)
        pixel_mask = mask_to_pixels(mask, self.patch_size).float()
        l_rec = self.rec_loss(recon.float(), imgs.float(), pixel_mask, self.patch_size)
        w = self.weight()
        return {"loss": (1 - w) * l_rec + w * l_cls, "l_rec": l_rec, "l_cls": l_cls, "w": w, "recon": recon}


def build_model(cfg, num_classes: int) -> SSLMAE:
    """SSLMAE from a `sslmae.config.Config`."""
    m = cfg.model
    return SSLMAE(
        num_classes=num_classes, task=cfg.data.task, mode=cfg.loss.mode, size=m.size, encoder=m.encoder,
        decoder_dim=m.decoder_dim, decoder_depth=m.decoder_depth,
        img_size=cfg.data.img_size, patch_size=m.patch_size, mask_ratio=m.mask_ratio,
        mask_patch_size=m.mask_patch_size, rec_loss=m.rec_loss, w=cfg.loss.w,
        learn_w=cfg.loss.learn_w, drop_path=m.drop_path, pretrained=m.pretrained,
    )
