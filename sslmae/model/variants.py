"""Encoder variants by name (as timm registers models): `VARIANTS[model.encoder]` is the class,
`build_model(cfg, num_classes)` the network a config describes."""

from __future__ import annotations

from sslmae.model.base import SSLMAE
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.model.visible import VisibleOnlySSLMAE

VARIANTS: dict[str, type[SSLMAE]] = {
    "simmim": SimMIMSSLMAE,  # the paper: mask token through the encoder
    "visible_only": VisibleOnlySSLMAE,  # extension: masked patches dropped before the encoder
}


def build_model(cfg, num_classes: int) -> SSLMAE:
    """The network `cfg` (a `sslmae.config.Config`) describes, randomly initialised
    (or its encoder from `model.pretrained`)."""
    cls = VARIANTS[cfg.model.encoder]
    return cls(num_classes, **cls.config_kwargs(cfg))
