"""`train.resume`: whether a run continues from its last checkpoint after a kill.

The checkpoint records the config it was made with (`SSLMAEModule.on_save_checkpoint`):
resuming under different params is refused or skipped, naming the keys that differ.
"""

from __future__ import annotations

from pathlib import Path

from sslmae.config import Config, ConfigError, to_dict
from sslmae.train.checkpoint import read_weights_only
from sslmae.train.checkpointing import last_checkpoint

# keys that may change between a run and its resumption without changing the result
FREE_KEYS = {"train.progress_bar", "train.resume", "train.out_dir", "data.num_workers", "data.cache", "data.cache_dir",
             "train.compile", "train.checkpoint_every", "tracking.enabled", "tracking.uri", "tracking.experiment"}


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
    state = read_weights_only(path, "training checkpoint",
                              "; move it aside to start over, or set train.resume=never")
    if not isinstance(state, dict) or "sslmae" not in state:
        raise ConfigError(f"{path}: not an sslmae training checkpoint; move it aside or set train.resume=never")
    saved = state["sslmae"]["config"]
    now, then = _flat(to_dict(cfg)), _flat(saved)
    differ = sorted(k for k in set(now) | set(then) if k not in FREE_KEYS and now.get(k) != then.get(k))
    if not differ:
        return path
    what = ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in differ)
    if cfg.train.resume == "strict":
        raise ConfigError(f"{path}: made with other params ({what}); use a new train.out_dir or train.resume=auto")
    log(f"not resuming from {path}: made with other params ({what}); training from the start")
    return None
