"""Fault tolerance: a Lightning checkpoint after every epoch, written atomically, and
`train.resume: auto` to continue from it after a kill.

The checkpoint holds tensors and primitives only (weights, optimiser and scheduler state,
loop counters, our history, best weights, torch RNG state), so it loads with
`torch.load(weights_only=True)`. It also holds the config it was made with: resuming under
different params is refused, naming the keys that differ.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sslmae.config import Config, ConfigError, to_dict

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
# keys that may change between a run and its resumption without changing the result
FREE_KEYS = {"train.progress_bar", "train.resume", "train.out_dir", "data.num_workers", "data.cache", "data.cache_dir", "train.compile",
             "train.checkpoint_every",
             "tracking.enabled",
             "tracking.uri", "tracking.experiment"}


def last_checkpoint(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / LAST


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_path(cfg: Config, log=print) -> Path | None:
    """The checkpoint to continue from, or None to start fresh.

    auto: continue when the checkpoint was made with the same params, else start over and
    say which params differ (a DVC rerun after a params change must retrain);
    strict: a checkpoint made with other params is a ConfigError; never: always start over.
    """
    path = last_checkpoint(cfg.train.out_dir)
    if cfg.train.resume == "never" or not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)["sslmae"]["config"]
    now, then = _flat(to_dict(cfg)), _flat(saved)
    differ = sorted(k for k in set(now) | set(then) if k not in FREE_KEYS and now.get(k) != then.get(k))
    if not differ:
        return path
    what = ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in differ)
    if cfg.train.resume == "strict":
        raise ConfigError(f"{path}: made with other params ({what}); use a new train.out_dir or train.resume=auto")
    log(f"not resuming from {path}: made with other params ({what}); training from the start")
    return None


def save_atomic(trainer, path: Path) -> None:
    """trainer.save_checkpoint to a temporary name, then rename: a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    trainer.save_checkpoint(tmp, weights_only=False)  # full state; collective under DDP; only rank 0 writes the file
    if trainer.is_global_zero:
        os.replace(tmp, path)
