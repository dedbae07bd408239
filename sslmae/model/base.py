"""The SSL-MAE network (Stoimchev et al., IEEE JSTARS 2025): what every encoder variant shares.

    imgs (N, 3, H, W) --variant's encoder under a mask--> tokens
      -> mean of the tokens the head may see, for every row --head--> logits (N, C)   L_cls on labeled rows
      -> variant's decoder --> recon (N, 3, H, W)                                L_rec on masked pixels
    L = (1 - w) * L_rec + w * L_cls

A variant (`sslmae.model.variants.VARIANTS`) says how the encoder sees a masked batch and
which decoder reconstructs it: `train_outputs(imgs, mask) -> (logits, recon | None)`.
Inference is the same for all: the whole image, no mask, every token pooled.
Mask convention: (N, L) bool, True is masked.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from sslmae.augment.pixels import MEAN, STD
from sslmae.bands import Bands, match_weights, names_of
from sslmae.model.masks import mask_to_pixels, random_patch_mask, visible_count
from sslmae.model.backbone import build_backbone, load_pretrained
from sslmae.model.weights_sources import fetch_weights
from sslmae.model.head import HEADS
from sslmae.model.losses import CLS_LOSSES, REC_LOSSES, REC_TARGETS
from sslmae.model.modes import MODES
from sslmae.model.weight import LossWeight


class SSLMAE(nn.Module):
    """Shared parts: the timm encoder, the classification head, both losses and the weight w.
    Subclasses add their decoder (when the mode reconstructs) and `train_outputs`."""

    def __init__(
        self,
        num_classes: int,
        task: str = "mlc",
        mode: str = "semi_supervised",
        backbone: str = "mini",
        img_size: int = 64,
        patch_size: int = 8,
        mask_ratio: float = 0.6,
        mask_patch_size: int = 16,
        mask_count: str = "ceil",
        rec_loss: str = "l1",
        rec_target: str = "raw",
        head: str = "linear",
        baseline_mask: bool = True,
        w: float = 0.5,
        learn_w: bool = False,
        drop_path: float = 0.0,
        pretrained: str | None = None,
        pixel_mean: tuple[float, ...] | None = None,
        pixel_std: tuple[float, ...] | None = None,
        bands: Bands | None = None,
        adapt_bands: bool = False,
        band_weights: tuple[float, ...] | None = None,
    ):
        super().__init__()
        self.task, self.mode = task, MODES[mode]
        self.img_size, self.patch_size = img_size, patch_size
        self.mask_ratio, self.mask_patch_size, self.mask_count = mask_ratio, mask_patch_size, mask_count
        self.rec_loss, self.rec_target, self.cls_loss = REC_LOSSES[rec_loss], REC_TARGETS[rec_target], CLS_LOSSES[task]
        # the authors mask the baseline's input too and pool its visible tokens
        self.masked = self.mode.reconstruct or baseline_mask
        # the dataset's bands (sslmae.bands), with their training statistics; None: 8-bit RGB
        self.in_chans = bands.count if bands is not None else 3
        self.encoder = build_backbone(backbone, img_size, patch_size, drop_path, self.in_chans)
        if pretrained:  # any source sslmae.model.weights_sources knows, from its cache when fetched before
            weights = fetch_weights(pretrained, backbone)
            channels = None
            if weights.bands is not None:  # multispectral weights: their bands, and the input they expect
                channels = match_weights(weights.bands, names_of(bands), adapt_bands, pretrained)
                if bands is not None:
                    bands = replace(bands, scale=weights.scale)
            load_pretrained(self.encoder, weights.path, pretrained, channels)
        self.bands = bands
        # the statistics the encoder's input is normalised with: ImageNet's unless the weights had others;
        # a dataset with bands: its own, of the stretched training pixels (sslmae.bands)
        self.pixel_range = bands.unit_range() if bands is not None else None
        default_mean, default_std = bands.unit_moments() if bands is not None else (MEAN, STD)
        self.pixel_mean = tuple(pixel_mean or default_mean)
        self.pixel_std = tuple(pixel_std or default_std)
        if band_weights is not None and (len(band_weights) != self.in_chans or not sum(band_weights) > 0):
            raise ValueError(f"loss.band_weights: {len(band_weights)} weights (summing to {sum(band_weights):g}) for "
                             f"{self.in_chans} bands {list(names_of(bands))}: give one per band, not all 0")
        self.register_buffer("band_weights", torch.tensor(band_weights, dtype=torch.float32)
                             if band_weights is not None else None, persistent=False)
        if len(self.pixel_mean) != self.in_chans or len(self.pixel_std) != self.in_chans:
            raise ValueError(f"model.pixel_mean / pixel_std: {len(self.pixel_mean)} / {len(self.pixel_std)} values "
                             f"for {self.in_chans} bands {list(bands.names) if bands else ['red', 'green', 'blue']}")
        self.head = HEADS[head](self.embed_dim, num_classes)
        # the baseline has no reconstruction term, so its objective is L_cls alone (w = 1)
        self.weight = LossWeight(w if self.mode.reconstruct else 1.0, learn_w and self.mode.reconstruct)

    @classmethod
    def kwargs_from(cls, model, loss) -> dict:
        """The constructor's keyword arguments from the config's `model` and `loss` sections."""
        return dict(mode=loss.mode, backbone=model.backbone, patch_size=model.patch_size, mask_ratio=model.mask_ratio,
                    mask_patch_size=model.mask_patch_size, mask_count=model.mask_count, rec_loss=model.rec_loss,
                    rec_target=model.rec_target, head=model.head, baseline_mask=loss.baseline_mask, w=loss.w,
                    learn_w=loss.learn_w, drop_path=model.drop_path, pretrained=model.pretrained,
                    pixel_mean=model.pixel_mean, pixel_std=model.pixel_std, adapt_bands=model.adapt_bands,
                    band_weights=tuple(loss.band_weights) if loss.band_weights is not None else None)

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_visible(self) -> int:
        """Patches each row keeps visible under `draw_mask` (a static count)."""
        return visible_count(self.img_size, self.patch_size, self.mask_patch_size, self.mask_ratio, self.mask_count)

    def draw_mask(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, L) bool, `L - num_visible` True per row."""
        return random_patch_mask(
            n, self.img_size, self.patch_size, self.mask_patch_size, self.mask_ratio, device, generator, self.mask_count
        )

    def encode(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs (N, 3, H, W) -> patch tokens (N, L, D), nothing masked."""
        vit = self.encoder
        x = vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(imgs))))))
        return x[:, vit.num_prefix_tokens :]

    def classify(self, tokens: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (N, L, D), visible (N, L) bool or None (all) -> logits (N, C): mean-pool + head."""
        if visible is None:
            pooled = tokens.mean(1)
        else:
            v = visible.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * v).sum(1) / v.sum(1).clamp_min(1.0)
        return self.head(pooled)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """Inference: imgs (N, 3, H, W) -> logits (N, C), no masking, all tokens pooled."""
        return self.classify(self.encode(imgs))

    def train_outputs(self, imgs: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """imgs (N, 3, H, W), mask (N, L) or None -> logits (N, C), recon (N, 3, H, W) or None."""
        raise NotImplementedError

    def training_losses(
        self,
        imgs: torch.Tensor,
        targets: torch.Tensor,
        labeled: torch.Tensor,
        mask: torch.Tensor | None = None,
        raw: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The joint objective for one batch.

        imgs (N, 3, H, W) normalised; targets (N, C) 0/1 (ignored where not labeled);
        labeled (N,) bool; mask (N, L) bool, drawn here when None and the mode masks;
        raw (N, 3, H, W): the [0, 1] pixels imgs were normalised from (None: imgs itself),
        reconstructed when model.rec_target is raw.
        Returns loss, l_rec, l_cls, w (0-dim tensors) and recon (N, 3, H, W) or None.
        Every row goes through the (tiny) head and the loss weighs labeled rows only, so shapes
        stay static and the GPU never waits on the host for a count of labeled rows.
        """
        if not self.masked:
            mask = None
        elif mask is None:
            mask = self.draw_mask(imgs.shape[0], imgs.device)
        logits, recon = self.train_outputs(imgs, mask)
        l_cls = self.cls_loss(logits.float(), targets.float(), labeled)
        w = self.weight()
        if recon is None:
            return {"loss": l_cls, "l_rec": imgs.new_zeros(()), "l_cls": l_cls, "w": w, "recon": None}
        pixel_mask = mask_to_pixels(mask, self.patch_size).float()
        target = self.rec_target(imgs, imgs if raw is None else raw)
        l_rec = self.rec_loss(recon.float(), target.float(), pixel_mask, self.patch_size, self.band_weights)
        return {"loss": (1 - w) * l_rec + w * l_cls, "l_rec": l_rec, "l_cls": l_cls, "w": w, "recon": recon}
