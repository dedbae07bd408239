"""SSL-MAE-GS and SSL-MAE-w_l: one training trial per name in `grid.trials` (w0.3: a fixed w,
learned: w = sigmoid(theta), baseline: the one trial of a mode without w), then selection of the
winner on the validation split.

Each trial is one call of `train` with its own out_dir (`<grid.out_dir>/<trial>`), so DVC
(foreach over grid.trials), Kubeflow (ParallelFor over the same list) or this module can run
them, in any order or in parallel, and each resumes on its own. `select` is the fan-in: it reads
the trials' metrics.json, writes the trials table, copies the winner's model and, when tracking is
on, nests the trials' MLflow runs under one parent grid run. The decisions (`best_trial`,
`shared_params`) are pure functions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from sslmae.atomic import atomic_file, write_json
from sslmae.config import Config, ConfigError, to_dict, updated
from sslmae.metrics import PRIMARY
from sslmae.model.modes import MODES
from sslmae.outputs import claim_folder, write_marker
from sslmae.redact import redacted
from sslmae.tracking.grid_log import log_grid
from sslmae.tracking.lineage import recorded_run_id
from sslmae.tracking.runs import check_tracking, flat_params

LEARNED = "learned"
BASELINE = "baseline"
SKIPPED_FILE = "skipped.json"  # in the folder of a default-grid trial that the mode does not run


def runnable(trial: str, mode: str) -> bool:
    """Can loss.mode `mode` run `trial`? A mode that reconstructs searches w (w0.3, learned); a mode
    without reconstruction has no w and runs the one trial `baseline`."""
    return (trial != BASELINE) == MODES[mode].reconstruct


def trial_names(cfg: Config) -> list[str]:
    """The trials of grid.trials that loss.mode can run, so the grid follows the mode (the default
    lists a trial for every mode); a list with none the mode can run is a contradiction, one line."""
    fit = [n for n in cfg.grid.trials if runnable(n, cfg.loss.mode)]
    if fit:
        return fit
    if MODES[cfg.loss.mode].reconstruct:
        raise ConfigError(f"grid.trials: {BASELINE!r} is the trial of a mode without reconstruction; "
                          f"loss.mode {cfg.loss.mode} searches w (e.g. [w0.3, w0.7, learned])")
    raise ConfigError(f"grid.trials: loss.mode {cfg.loss.mode} has no w to search; set grid.trials=[{BASELINE}]")


def skipped(cfg: Config, trial: str) -> bool:
    """Is `trial` listed in grid.trials but not run by this mode? (DVC's foreach runs every listed name.)"""
    return trial in cfg.grid.trials and trial not in trial_names(cfg)


def trial_config(cfg: Config, trial: str) -> Config:
    """The config of one trial: its w (or learnable w) and its own out_dir."""
    if trial not in trial_names(cfg):
        raise ValueError(f"trial {trial!r}: not in grid.trials ({', '.join(trial_names(cfg))})")
    fixed = {LEARNED: {"loss.learn_w": True}, BASELINE: {}}
    changes = fixed[trial] if trial in fixed else {"loss.w": float(trial[1:]), "loss.learn_w": False}
    return updated(cfg, {**changes, "train.out_dir": str(Path(cfg.grid.out_dir) / trial)})


def run_trial(cfg: Config, trial: str):
    """Train one trial; a listed trial that this mode does not run leaves only
    SKIPPED_FILE in its folder (and returns None), so a fan-out over every listed name succeeds."""
    folder = Path(cfg.grid.out_dir) / trial
    if skipped(cfg, trial):
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SKIPPED_FILE, {"trial": trial, "mode": cfg.loss.mode,
                                           "reason": f"loss.mode {cfg.loss.mode} does not run {trial}"})
        return None
    (folder / SKIPPED_FILE).unlink(missing_ok=True)
    from sslmae.train.run import train  # late: Lightning's import costs seconds a skipped trial or the selection never uses

    return train(trial_config(cfg, trial))


def trials_table(cfg: Config, dirs: dict[str, Path] | None = None) -> pd.DataFrame:
    """One row per trial from its metrics.json; a missing trial is an error naming it.
    dirs: trial -> folder, when trials ran elsewhere than grid.out_dir (Kubeflow artifacts)."""
    rows = []
    for trial in trial_names(cfg):
        tcfg = trial_config(cfg, trial)
        folder = Path(dirs[trial]) if dirs and trial in dirs else Path(tcfg.train.out_dir)
        path = folder / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: trial {trial!r} has not finished (run it first)")
        m = json.loads(path.read_text())
        rows.append({"trial": trial, "w": tcfg.loss.w, "learn_w": tcfg.loss.learn_w, "w_final": m.get("w_final"),
                     **{k: v for k, v in m.items() if k.startswith("val_")}, "best_epoch": m.get("best_epoch"),
                     "checkpoint": str(folder / "model.pt")})
    return pd.DataFrame(rows)


def best_trial(table: pd.DataFrame, metric: str) -> pd.Series:
    """The row of `table` with the highest `metric` (ties: the first listed)."""
    if metric not in table or table[metric].isna().all():
        raise ValueError(f"grid: no trial reports {metric} (is the validation subset empty?)")
    return table.loc[table[metric].idxmax()]


def shared_params(configs: list[dict]) -> dict[str, str]:
    """The MLflow params (flat) that every one of `configs` (as dicts) has with the same value."""
    flat = [flat_params(c) for c in configs]
    return {k: v for k, v in flat[0].items() if all(f.get(k) == v for f in flat[1:])}


def select(cfg: Config, out_dir: str | Path, dirs: dict[str, Path] | None = None) -> dict:
    """Pick the trial with the best validation primary metric and write trials.csv,
    selected.json and the winner's model.pt to out_dir."""
    out = claim_folder(out_dir, "grid", legacy=("trials.csv", "selected.json"))
    check_tracking(cfg.tracking)
    table = trials_table(cfg, dirs)
    metric = f"val_{PRIMARY[cfg.data.task]}"
    best = best_trial(table, metric)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "grid")
    with atomic_file(out / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out / "model.pt") as tmp:
        shutil.copyfile(best["checkpoint"], tmp)
    for trial, ckpt in zip(table["trial"], table["checkpoint"]):  # the report needs every trial's curves
        for name in ("history.csv", "metrics.json"):
            src = Path(ckpt).parent / name
            if src.is_file() and src.parent.resolve() != (out / trial).resolve():
                (out / trial).mkdir(exist_ok=True)
                shutil.copyfile(src, out / trial / name)
    selected = {"trial": best["trial"], "metric": metric, "value": float(best[metric]), "w": float(best["w"]),
                "learn_w": bool(best["learn_w"]), "w_final": best["w_final"], "model": str(out / "model.pt"),
                # the MLflow run that trained the winner: a registered version's source
                "run_id": recorded_run_id(Path(best["checkpoint"]).parent)}
    shared = shared_params([redacted(to_dict(trial_config(cfg, t))) for t in trial_names(cfg)])
    parent = log_grid(cfg.tracking, shared, table, selected, out)
    if parent is not None:
        selected["parent_run_id"] = parent
    write_json(out / "selected.json", selected)
    return selected


def grid(cfg: Config, out_dir: str | Path) -> dict:
    """Every trial (each resumes if interrupted), then `select`."""
    for trial in cfg.grid.trials:
        run_trial(cfg, trial)
    return select(cfg, out_dir)
