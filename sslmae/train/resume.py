"""`train.resume`: whether a run continues from its last checkpoint after a kill.

The checkpoint records the config it was made with (`SSLMAEModule.on_save_checkpoint`):
resuming under different params is refused or skipped, naming the keys that differ. Knobs the
schema marks free (`sslmae.config.free_keys`: paths, workers, logging) may differ.
"""

from __future__ import annotations

from pathlib import Path

from sslmae.config import ConfigError, flatten, free_keys, from_saved, to_dict
from sslmae.train.checkpoints import best_checkpoint, best_weights, last_checkpoint
from sslmae.train.model_file import read_weights_only


def changed_params(now: dict, then: dict) -> list[str]:
    """Dotted keys whose values differ between two configs (as dicts), free knobs aside."""
    a, b = flatten(now), flatten(then)
    free = free_keys()
    return sorted(k for k in set(a) | set(b) if k not in free and a.get(k) != b.get(k))


def _saved_config(state, path: Path) -> dict:
    if not isinstance(state, dict) or not isinstance(state.get("sslmae"), dict) or "config" not in state["sslmae"]:
        raise ConfigError(f"{path}: not an sslmae training checkpoint; move it aside or set train.resume=never")
    try:  # an older sslmae's keys, in today's names
        return to_dict(from_saved(state["sslmae"]["config"]))
    except ConfigError:
        return state["sslmae"]["config"]


def resume_path(out_dir: str | Path, policy: str, params: dict, log=print) -> Path | None:
    """The checkpoint in `out_dir` to continue from, or None to start fresh. params: the run's
    config as a dict; policy: train.resume.

    auto: continue when the checkpoint was made with the same params, else start over and
    say which params differ (a DVC rerun after a params change must retrain);
    strict: a checkpoint made with other params is a ConfigError; never: always start over.
    """
    path = last_checkpoint(out_dir)
    if policy == "never" or not path.is_file():
        return None
    state = read_weights_only(path, "training checkpoint",
                              "; move it aside to start over, or set train.resume=never")
    saved = _saved_config(state, path)
    differ = changed_params(params, saved)
    if not differ:
        if best_checkpoint(out_dir).is_file():  # the resumed run exports from it: damaged is said now, not at the end
            best_weights(best_checkpoint(out_dir))
        return path
    then, now = flatten(saved), flatten(params)
    what = ", ".join(f"{k}: {then.get(k)!r} -> {now.get(k)!r}" for k in differ)
    if policy == "strict":
        raise ConfigError(f"{path}: made with other params ({what}); use a new train.out_dir or train.resume=auto")
    log(f"not resuming from {path}: made with other params ({what}); training from the start")
    return None
