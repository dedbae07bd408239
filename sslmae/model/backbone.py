"""Backbone registry (`model.backbone`): DeiT/ViT encoders from timm, by name.

`BACKBONES[name](img_size, patch_size, drop_path)` builds a randomly initialised timm
`VisionTransformer` without a head; `load_pretrained` fills it from a local weights file
(no downloads anywhere). `micro` and `mini` are small custom sizes for tests and CPU runs.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import timm
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

Factory = Callable[..., VisionTransformer]


def _custom(embed_dim: int, depth: int, num_heads: int, img_size: int, patch_size: int, drop_path: float):
    return VisionTransformer(
        img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
        num_heads=num_heads, mlp_ratio=4.0, num_classes=0, drop_path_rate=drop_path,
    )


def _timm(model_name: str, img_size: int, patch_size: int, drop_path: float):
    return timm.create_model(
        model_name, pretrained=False, img_size=img_size, patch_size=patch_size,
        num_classes=0, drop_path_rate=drop_path,
    )


BACKBONES: dict[str, Factory] = {
    "micro": partial(_custom, 32, 2, 2),  # unit tests
    "mini": partial(_custom, 128, 4, 4),  # CPU default on the synthetic data
    "tiny": partial(_timm, "deit_tiny_patch16_224"),
    "small": partial(_timm, "deit_small_patch16_224"),
    "base": partial(_timm, "deit_base_patch16_224"),
    "large": partial(_timm, "vit_large_patch16_224"),
}


def build_backbone(name: str, img_size: int, patch_size: int, drop_path: float = 0.0) -> VisionTransformer:
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"model.backbone: unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None
    return factory(img_size=img_size, patch_size=patch_size, drop_path=drop_path)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)  # never arbitrary pickles
    for key in ("model", "state_dict", "module"):  # common wrappers (DeiT, Lightning, DDP)
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    return obj


def _without_distillation(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A distilled DeiT (cls + dist token) as a plain ViT: the distillation token, its position
    embedding (the second) and its head dropped, as the authors rebuild it (model.py:145-161)."""
    if "dist_token" not in state:
        return state
    state = {k: v for k, v in state.items() if k != "dist_token" and not k.startswith("head_dist.")}
    if "pos_embed" in state:
        pos = state["pos_embed"]
        state["pos_embed"] = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
    return state


def load_pretrained(encoder: VisionTransformer, path: str | Path) -> list[str]:
    """Load encoder weights from a local file (.pth/.pt/.bin via weights_only, or .safetensors).

    Position embeddings and patch embeddings are resampled to the encoder's image and
    patch size by timm's filter. Heads in the file are ignored. Returns the encoder keys
    the file did not provide; raises ValueError if it provided none of them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: weights file not found: {path}")
    try:
        state = _read_state_dict(path)
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        raise ValueError(f"model.pretrained: cannot read {path}: {exc}") from None
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}
    state = _without_distillation(state)
    state = checkpoint_filter_fn(state, encoder)
    own = encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not usable:
        raise ValueError(f"model.pretrained: {path} holds no weights matching this encoder")
    encoder.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
