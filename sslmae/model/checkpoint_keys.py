"""Weights files as a timm ViT encoder's state dict: unwrap, rename, drop what the encoder lacks.

Layouts handled (each a real checkpoint format, not a guess):
    timm / DeiT       `{"model": {...}}` or a flat dict; timm names (`patch_embed.proj.weight`,
                      `blocks.N.attn.qkv.weight`, `pos_embed`, `cls_token`, `norm.*`)
    distilled DeiT    plus `dist_token`, a second prefix position and `head_dist.*` (dropped)
    MAE / SatMAE      `{"model": {...}}` from an MAE pretraining run: timm encoder names plus
                      `mask_token`, `decoder_embed.*`, `decoder_pos_embed`, `decoder_blocks.*`,
                      `decoder_norm.*`, `decoder_pred.*` (the decoder, dropped)
    Lightning / DDP   `{"state_dict": {...}}`, keys under `module.`, `encoder.`, `backbone.`
                      or `model.encoder.` (prefixes stripped)
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

WRAPPERS = ("model", "state_dict", "module")  # DeiT / MAE, Lightning, DDP
PREFIXES = ("module.", "model.encoder.", "encoder.", "backbone.")
# pretraining-only parts of an MAE-style checkpoint and classifier heads: never the encoder's
DROPPED = ("decoder_", "mask_token", "head.", "head_dist.", "fc_norm.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file, or a torch file read weights-only (never arbitrary pickles), unwrapped."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in WRAPPERS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"holds a {type(obj).__name__}, not a dict of tensors")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _without_distillation(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A distilled DeiT (cls + dist token) as a plain ViT: the distillation token and its position
    embedding (the second) dropped, as the authors rebuild it (model.py:145-161)."""
    if "dist_token" not in state:
        return state
    state = {k: v for k, v in state.items() if k != "dist_token"}
    if "pos_embed" in state:
        pos = state["pos_embed"]
        state["pos_embed"] = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
    return state


def encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any layout above -> timm ViT encoder names; decoder, mask token and heads dropped."""
    state = {_strip(k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED)}
    return _without_distillation(state)
