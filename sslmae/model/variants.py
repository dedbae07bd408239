"""Encoder variants by name (`model.variant`, as timm registers models): `VARIANTS[name]` is the
class, `build_model(...)` the network the config's sections describe."""

from __future__ import annotations

from sslmae.bands import Bands
from sslmae.model.base import SSLMAE
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.model.visible import VisibleOnlySSLMAE

VARIANTS: dict[str, type[SSLMAE]] = {
    "simmim": SimMIMSSLMAE,  # the paper: mask token through the encoder
    "visible_only": VisibleOnlySSLMAE,  # extension: masked patches dropped before the encoder
}


def build_model(model, loss, task: str, img_size: int, num_classes: int, bands: Bands | None = None) -> SSLMAE:
    """The network of the config's `model` and `loss` sections for `task` images of `img_size` (and
    the dataset's `bands`, with their statistics; None: 8-bit RGB), randomly initialised (or its
    encoder from `model.pretrained`)."""
    cls = VARIANTS[model.variant]
    return cls(num_classes, task=task, img_size=img_size, bands=bands, **cls.kwargs_from(model, loss))
