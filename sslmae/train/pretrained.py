"""A run's starting weights, settled before any data is read: fetched into the libraries' caches,
checked against the backbone, their pixel statistics put into the config (so the model file,
evaluation and prediction normalise as training did), and what they are recorded."""

from __future__ import annotations

from sslmae.config import Config, updated
from sslmae.model.backbone import build_backbone, load_pretrained
from sslmae.model.weights_sources import fetch_weights


def settle_pretrained(cfg: Config) -> tuple[Config, dict[str, str] | None]:
    """-> (cfg with model.pixel_mean / pixel_std taken from the weights where they state them and the
    config does not, provenance {source, revision, file, sha256} or None without model.pretrained).
    A source that cannot be had, or a file whose keys fit nothing in the encoder, is one ValueError."""
    m = cfg.model
    if not m.pretrained:
        return cfg, None
    weights = fetch_weights(m.pretrained, m.backbone)
    # the same check the model's constructor makes, here before the data: a wrong file fails in seconds
    # (multispectral weights: on an encoder of their own bands; the data's are checked when the model is built)
    in_chans = len(weights.bands) if weights.bands else 3
    load_pretrained(build_backbone(m.backbone, cfg.data.img_size, m.patch_size, in_chans=in_chans), weights.path,
                    weights.source)
    changes = {}
    if m.pixel_mean is None and m.pixel_std is None and weights.mean and weights.std:
        changes = {"model.pixel_mean": list(weights.mean), "model.pixel_std": list(weights.std)}
    return (updated(cfg, changes) if changes else cfg), weights.provenance()
