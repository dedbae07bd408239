"""The label-fraction curve: for each labeled fraction and mode, split, train and evaluate
on the test subset; one row per (fraction, mode). `sslmae report --fractions` plots it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sslmae.atomic import atomic_file
from sslmae.config import Config, updated
from sslmae.evaluate import evaluate_as_configured
from sslmae.model.modes import MODES
from sslmae.outputs import claim_folder, write_marker
from sslmae.split import split_dataset
from sslmae.train.run import train

COLUMNS = ("macro_auprc", "micro_f1", "macro_f1", "accuracy")


def modes_and_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Split a `--modes` list that swallowed trailing `section.key=value` overrides (argparse's
    nargs='+' takes them) into the two; an item that is neither is refused, naming it."""
    modes = [i for i in items if "=" not in i]
    check_modes(modes)
    return modes, [i for i in items if "=" in i]


def check_modes(modes: list[str]) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"fractions: unknown mode(s) {unknown}; choose from {list(MODES)}")


def step_factor(split: pd.DataFrame, batch_size: int, unlabeled_ratio: int = 1) -> float:
    """How many more epochs a labeled-only run needs to take as many optimizer steps as a
    semi-supervised one: a semi-supervised epoch walks the unlabeled pool in batches of
    unlabeled_ratio x `batch_size`, a labeled-only epoch the labeled images in batches of
    `batch_size`. split: image,subset."""
    counts = split["subset"].value_counts()
    labeled, unlabeled = int(counts.get("labeled", 0)), int(counts.get("unlabeled", 0))
    if labeled == 0 or unlabeled == 0:
        return 1.0
    return math.ceil(unlabeled / (unlabeled_ratio * batch_size)) / math.ceil(labeled / batch_size)


def _equal_steps(cfg: Config, factor: float) -> Config:
    """Epoch-counted knobs (epochs, warmup, checkpoint and validation intervals) scaled by `factor`."""
    t = cfg.train
    return updated(cfg, {"train.epochs": max(1, round(t.epochs * factor)), "train.warmup_epochs": t.warmup_epochs * factor,
                         "train.checkpoint_every": max(1, round(t.checkpoint_every * factor)),
                         "train.val_every": max(1, round(t.val_every * factor))})


def fraction_curve(cfg: Config, fractions: list[float], modes: list[str], work_dir: str | Path,
                   out: str | Path, predefined: str | Path | None = None, equal_steps: bool = False) -> pd.DataFrame:
    """`predefined`: a train/val/test table (e.g. UCM's split_seed42.csv, the authors' protocol)
    that fixes val and test; only the labeled share of train changes with the fraction.
    `equal_steps`: modes without the unlabeled pool train for as many optimizer steps as the
    semi-supervised mode (more epochs of the small labeled pool, validated as often), not as many epochs; with
    equal epochs a 10 % baseline would take about an eighth of the steps.
    The table at `out` is rewritten after every run, so an interrupted curve keeps its rows."""
    check_modes(modes)

    work = claim_folder(work_dir, "fractions")
    work.mkdir(parents=True, exist_ok=True)
    write_marker(work, "fractions")
    rows = []
    for fraction in fractions:
        split_file = work / f"split_{fraction}.csv"
        split = split_dataset(cfg.data.dir, split_file, fraction=fraction, val=cfg.split.val, test=cfg.split.test,
                      seed=cfg.split.seed, predefined_file=predefined)
        for mode in modes:
            run_dir = work / f"{mode}_{fraction}"
            tcfg = updated(cfg, {"data.split_file": str(split_file), "loss.mode": mode, "train.out_dir": str(run_dir),
                                 "loss.learn_w": cfg.loss.learn_w and MODES[mode].reconstruct,
                                 "evaluate.split": "test"})
            if equal_steps and not MODES[mode].unlabeled:
                tcfg = _equal_steps(tcfg, step_factor(split, cfg.train.batch_size, cfg.train.unlabeled_ratio))
            result = train(tcfg)
            metrics = evaluate_as_configured(tcfg, result.checkpoint, work / f"eval_{mode}_{fraction}", tracked=False)
            rows.append({"fraction": fraction, "mode": mode, "epochs": tcfg.train.epochs,
                         "labeled": int((split["subset"] == "labeled").sum()),
                         "val_macro_auprc": (result.val_metrics or {}).get("macro_auprc"),
                         "w": result.w_per_epoch[-1] if result.w_per_epoch else None,
                         "train_seconds": round(result.seconds, 1),
                         **{f"test_{k}": metrics[k] for k in COLUMNS if k in metrics}})
            table = pd.DataFrame(rows)
            with atomic_file(out) as tmp:
                table.to_csv(tmp, index=False)
    return table
