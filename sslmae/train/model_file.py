"""The exported model file: weights plus everything needed to rebuild and use it.

Saved as a plain dict of tensors and primitives, so it loads with
`torch.load(weights_only=True)` (no arbitrary pickles), written atomically.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from sslmae.atomic import atomic_file
from sslmae.bands import Bands
from sslmae.config import Config, ConfigError, from_saved, to_dict, updated
from sslmae.model.base import SSLMAE
from sslmae.model.variants import build_model
from sslmae.redact import redacted

FORMAT = "sslmae-model-v1"


def save_model(path: str | Path, model: SSLMAE, cfg: Config, label_names: list[str], **meta) -> Path:
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": redacted(to_dict(cfg)),  # no credentials in a file that travels
        "label_names": list(label_names),
        "meta": meta,
    }
    if model.bands is not None:  # an RGB model's file is as before
        payload["bands"] = model.bands.to_json()
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used; the message names it and the way out."""


def read_weights_only(path: str | Path, what: str, way_out: str = "", map_location: str = "cpu"):
    """torch.load(path, weights_only=True), every failure one line: a file that holds pickled code
    is refused as such (sslmae never runs it), a damaged one is named with `way_out`."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise CheckpointError(f"{path}: refused: not a weights-only {what} (it would run pickled code, "
                                  "which sslmae never loads)") from None
        raise CheckpointError(f"{path}: cannot read the {what} (damaged or truncated){way_out}") from None
    except Exception as exc:  # a torn file fails anywhere in the unpickler: KeyError, EOFError, RuntimeError, ...
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
        raise CheckpointError(f"{path}: cannot read the {what} (damaged or truncated: {reason}){way_out}") from None


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[SSLMAE, Config, list[str], dict]:
    """-> (model in eval mode, its config, label names, meta). Anything wrong with the file is one
    error naming it: missing (FileNotFoundError), damaged, foreign or not matching its own config
    (CheckpointError)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    payload = read_weights_only(path, "sslmae model file", map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an sslmae model file (expected format {FORMAT})")
    missing = [k for k in ("state_dict", "config", "label_names") if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: damaged sslmae model file (no {', '.join(missing)})")
    try:
        cfg = from_saved(payload["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the model file's config is not valid: {exc}") from None
    # the weights are in the file: never reach for the original pretrained file again
    cfg = updated(cfg, {"model.pretrained": None})
    try:
        bands = Bands.from_json(payload["bands"]) if "bands" in payload else None
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the model file's bands are not readable ({exc})") from None
    model = build_model(cfg.model, cfg.loss, cfg.data.task, cfg.data.img_size, len(payload["label_names"]), bands)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{path}: the weights do not fit the model its config describes ({reason})") from None
    return model.eval(), cfg, payload["label_names"], payload.get("meta", {})
