"""Classification heads by name (`model.head`): pooled tokens (N, D) -> logits (N, C)."""

from __future__ import annotations

from typing import Callable

from torch import nn


def linear_head(dim: int, num_classes: int) -> nn.Module:
    """The paper's fully connected layer."""
    head = nn.Linear(dim, num_classes)
    nn.init.trunc_normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return head


def mlp_head(dim: int, num_classes: int) -> nn.Module:
    """The authors' code (src/models/mae/model.py:35-40 at 800df98): LayerNorm -> Linear(D, D)
    -> GELU -> Linear(D, C), torch's default initialisation."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))


HEADS: dict[str, Callable[[int, int], nn.Module]] = {"linear": linear_head, "mlp": mlp_head}
