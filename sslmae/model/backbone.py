"""Backbone registry (`model.backbone`): DeiT/ViT encoders from timm, by name.

`BACKBONES[name](img_size, patch_size, drop_path)` builds a randomly initialised timm
`VisionTransformer` without a head; `load_pretrained` fills it from a local weights file
(sslmae.model.weights_sources fetches remote ones into the libraries' caches first). `micro` and `mini` are small custom sizes for tests and CPU runs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import timm
import torch
from timm.models import adapt_input_conv
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from sslmae.model.checkpoint_keys import encoder_state, read_state_dict

Factory = Callable[..., VisionTransformer]


def _custom(embed_dim: int, depth: int, num_heads: int, img_size: int, patch_size: int, drop_path: float,
            in_chans: int = 3):
    return VisionTransformer(
        img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
        num_heads=num_heads, mlp_ratio=4.0, num_classes=0, drop_path_rate=drop_path, in_chans=in_chans,
    )


def _timm(model_name: str, img_size: int, patch_size: int, drop_path: float, in_chans: int = 3):
    return timm.create_model(
        model_name, pretrained=False, img_size=img_size, patch_size=patch_size,
        num_classes=0, drop_path_rate=drop_path, in_chans=in_chans,
    )


# the timm architecture behind each timm-built size (`model.pretrained: timm` takes its default tag)
TIMM_NAMES = {"tiny": "deit_tiny_patch16_224", "small": "deit_small_patch16_224",
              "base": "deit_base_patch16_224", "large": "vit_large_patch16_224"}

BACKBONES: dict[str, Factory] = {
    "micro": partial(_custom, 32, 2, 2),  # unit tests
    "mini": partial(_custom, 128, 4, 4),  # CPU default on the synthetic data
    **{size: partial(_timm, name) for size, name in TIMM_NAMES.items()},
}


def build_backbone(name: str, img_size: int, patch_size: int, drop_path: float = 0.0,
                   in_chans: int = 3) -> VisionTransformer:
    """in_chans: the image's channels (3 RGB; a dataset's band count)."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"model.backbone: unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None
    return factory(img_size=img_size, patch_size=patch_size, drop_path=drop_path, in_chans=in_chans)


def load_pretrained(encoder: VisionTransformer, path: str | Path, source: str | None = None,
                    channels: list[int | None] | None = None) -> list[str]:
    """Load encoder weights from a local file (.pth/.pt/.bin via weights_only, or .safetensors) in
    any layout sslmae.model.checkpoint_keys maps (timm, distilled DeiT, MAE/SatMAE, Lightning).

    Position embeddings and patch embeddings are resampled to the encoder's image and
    patch size by timm's filter. Heads in the file are ignored. Returns the encoder keys
    the file did not provide; raises ValueError if it provided none of them. source: what the
    user named (a URL, `hf-hub:...`), shown in errors instead of the cached file. channels: for
    weights of named bands (sslmae.bands.match_weights), the file's input channel of each of the
    encoder's, None for the mean kernel; without, RGB kernels adapt by timm's rule.
    """
    path = Path(path)
    shown = source or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: weights file not found: {path}")
    try:
        state = read_state_dict(path)
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        raise ValueError(f"model.pretrained: cannot read {shown}: {exc}") from None
    state = checkpoint_filter_fn(encoder_state(state), encoder)
    own = encoder.state_dict()
    embed = "patch_embed.proj.weight"
    if channels is not None and embed in state:
        kernels = state[embed]
        mean = kernels.mean(dim=1)
        state[embed] = torch.stack([kernels[:, j] if j is not None else mean for j in channels], dim=1)
    elif embed in state and embed in own and state[embed].shape[1] != own[embed].shape[1]:
        # RGB weights for a C-band encoder: timm's rule (the kernel repeated over the bands, scaled by 3 / C)
        state[embed] = adapt_input_conv(own[embed].shape[1], state[embed])
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not usable:
        raise ValueError(f"model.pretrained: {shown} holds no weights matching this encoder "
                         f"({encoder.embed_dim} wide, {len(encoder.blocks)} blocks): choose weights of "
                         "this model.backbone's architecture, or the backbone of these weights")
    encoder.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
