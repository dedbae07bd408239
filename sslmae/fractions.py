"""The label-fraction curve: for each labeled fraction and mode, split, train and evaluate
on the test subset; one row per (fraction, mode). `sslmae report --fractions` plots it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from sslmae.atomic import atomic_file
from sslmae.config import Config

COLUMNS = ("macro_auprc", "micro_f1", "macro_f1", "accuracy")


def fraction_curve(cfg: Config, fractions: list[float], modes: list[str], work_dir: str | Path,
                   out: str | Path, predefined: str | Path | None = None) -> pd.DataFrame:
    """`predefined`: a train/val/test table (e.g. UCM's split_seed42.csv, the authors' protocol)
    that fixes val and test; only the labeled share of train changes with the fraction.
    The table at `out` is rewritten after every run, so an interrupted curve keeps its rows."""
    from sslmae.evaluate import evaluate
    from sslmae.split import split_dataset
    from sslmae.train.run import train

    work = Path(work_dir)
    rows = []
    for fraction in fractions:
        split_file = work / f"split_{fraction}.csv"
        split_dataset(cfg.data.dir, split_file, fraction=fraction, val=cfg.split.val, test=cfg.split.test,
                      seed=cfg.split.seed, predefined_file=predefined)
        for mode in modes:
            run_dir = work / f"{mode}_{fraction}"
            tcfg = dataclasses.replace(
                cfg, data=dataclasses.replace(cfg.data, split_file=str(split_file)),
                loss=dataclasses.replace(cfg.loss, mode=mode, learn_w=cfg.loss.learn_w and mode != "supervised_baseline"),
                train=dataclasses.replace(cfg.train, out_dir=str(run_dir)))
            result = train(tcfg)
            metrics = evaluate(result.checkpoint, work / f"eval_{mode}_{fraction}", subset="test",
                               dataset_dir=cfg.data.dir, split_file=split_file, threshold=cfg.evaluate.threshold)
            rows.append({"fraction": fraction, "mode": mode, "w": result.w_per_epoch[-1] if result.w_per_epoch else None,
                         "train_seconds": round(result.seconds, 1),
                         **{f"test_{k}": metrics[k] for k in COLUMNS if k in metrics}})
            table = pd.DataFrame(rows)
            with atomic_file(out) as tmp:
                table.to_csv(tmp, index=False)
    return table
