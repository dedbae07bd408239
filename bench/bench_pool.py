"""Does my archive help? Quality against the size of an unlabeled pool, on UCM_mlc.

The authors' split (`split_seed42.csv`: val 209 and test 433 fixed) with 10 % of its train part
labeled (stratified, per seed); the pool is a share of the *remaining* train images given to sslmae
as what a user's archive is: a separate folder of images with no labels (`data.unlabeled`), ingested
beside the labeled folder, never their labels. Pool shares are nested (the 25 % pool is part of the
100 % one). With no pool the run is `supervised` (SSL-MAE's objective on the labeled images alone:
there is nothing else); with a pool, `semi_supervised` (the pool in every step, `train.unlabeled_ratio`).
Each (seed, pool) trains with the params file (+ overrides) and is scored on the test part. Writes

  bench/results/pool_<date>.jsonl   one line per run: dataset, seed, labeled, pool, pool_share, mode,
                                    epochs, steps per epoch, train_seconds, val_macro_auprc,
                                    macro_auprc, micro_f1, macro_f1, machine, params, overrides, date

and prints a markdown table (docs/results.md quotes it).

    PYTHONPATH=. python bench/bench_pool.py --seeds 42 1 2 --pools 0 0.25 1 model.backbone=micro
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = ("macro_auprc", "micro_f1", "macro_f1")


def sources(data: Path, predefined: pd.DataFrame, labels: pd.DataFrame, fraction: float, seed: int,
            pool_share: float, work: Path) -> tuple[Path, Path | None, Path]:
    """(labeled folder, pool folder or None, predefined table) under `work`, of symlinks to `data`'s
    images: the labeled folder holds the labeled train images with val and test; the pool folder the
    first `pool_share` of the other train images in a seeded order, without labels."""
    from sslmae.split import make_split

    train = predefined.loc[predefined["split"] == "train", "image"].tolist()
    y = labels.set_index("image").loc[train].to_numpy()
    sides = make_split(y, fraction, 0.0, 0.0, seed, predefined=np.full(len(train), "train", dtype=object))
    labeled = [i for i, s in zip(train, sides) if s == "labeled"]
    rest = [i for i, s in zip(train, sides) if s != "labeled"]
    rest = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    pool = rest[: round(pool_share * len(rest))]
    keep = set(labeled) | set(predefined.loc[predefined["split"] != "train", "image"])
    lab_dir = work / "labeled"
    (lab_dir / "images").mkdir(parents=True, exist_ok=True)
    ext = {p.stem: p.suffix for p in (data / "images").iterdir()}
    for image in keep:
        link = lab_dir / "images" / f"{image}{ext[image]}"
        if not link.exists():
            link.symlink_to(data / "images" / f"{image}{ext[image]}")
    labels[labels["image"].isin(keep)].to_csv(lab_dir / "labels.csv", index=False)
    table = work / "predefined.csv"
    predefined[predefined["image"].isin(keep)].to_csv(table, index=False)
    pool_dir = None
    if pool:
        pool_dir = work / "pool"
        pool_dir.mkdir(exist_ok=True)
        for image in pool:
            link = pool_dir / f"{image}{ext[image]}"
            if not link.exists():
                link.symlink_to(data / "images" / f"{image}{ext[image]}")
    return lab_dir, pool_dir, table


def run_one(cfg, data: Path, predefined: pd.DataFrame, labels: pd.DataFrame, fraction: float, seed: int,
            share: float, work: Path) -> dict:
    from sslmae.config import updated
    from sslmae.datasets.ingest import ingest
    from sslmae.evaluate import evaluate
    from sslmae.split import split_dataset
    from sslmae.train.run import train

    lab_dir, pool_dir, table = sources(data, predefined, labels, fraction, seed, share, work)
    ds, split = work / "dataset", work / "split.csv"
    ingest(str(lab_dir), ds, unlabeled=[str(pool_dir)] if pool_dir else [], log=lambda m: None)
    # the labeled share was drawn above: every labeled train image here is labeled (fraction 1)
    subsets = split_dataset(ds, split, fraction=1.0, predefined_file=table, seed=seed)["subset"].value_counts()
    mode = "semi_supervised" if pool_dir else "supervised"
    rcfg = updated(cfg, {"seed": seed, "loss.mode": mode, "data.dir": str(ds), "data.split_file": str(split),
                         "train.out_dir": str(work / "train")})
    t0 = time.monotonic()
    result = train(rcfg)
    seconds = time.monotonic() - t0
    metrics = evaluate(result.checkpoint, work / "eval", ds, split, subset="test", cache_dir=rcfg.data.cache_dir)
    history = pd.read_csv(work / "train" / "history.csv")
    return {"seed": seed, "labeled": int(subsets.get("labeled", 0)), "pool": int(subsets.get("unlabeled", 0)),
            "pool_share": share, "mode": mode, "epochs": rcfg.train.epochs,
            "images_per_epoch": int(history["train_images"].iloc[0]), "train_seconds": round(seconds, 1),
            "val_macro_auprc": (result.val_metrics or {}).get("macro_auprc"), **{k: metrics[k] for k in METRICS}}


def markdown(rows: list[dict]) -> str:
    """Per pool share: mean and spread over seeds of test macro AUPRC, micro F1, macro F1."""
    lines = ["| pool (share of the other train images) | images | runs | macro AUPRC | micro F1 | macro F1 |",
             "|---|---|---|---|---|---|"]
    frame = pd.DataFrame(rows)
    for share, group in frame.groupby("pool_share"):
        cells = [f"{group[k].mean():.3f} ± {group[k].std(ddof=0):.3f}" for k in METRICS]
        lines.append(f"| {share:.0%} | {int(group['pool'].iloc[0])} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    p.add_argument("--fraction", type=float, default=0.1, help="labeled share of the train part")
    p.add_argument("--pools", type=float, nargs="+", default=[0.0, 0.25, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "pool")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("overrides", nargs="*", help="section.key=value on top of the params file")
    args = p.parse_args(argv)
    if not (args.data / "labels.csv").is_file() or not (args.data / "split_seed42.csv").is_file():
        print(f"{args.data}: UCM_mlc (labels.csv, split_seed42.csv) not found", file=sys.stderr)
        return 2

    from bench.machine import cpu_model
    from sslmae.config import load_config

    cfg = load_config(args.params, ["train.progress_bar=false", "tracking.enabled=false", *args.overrides])
    predefined = pd.read_csv(args.data / "split_seed42.csv", dtype=str)
    labels = pd.read_csv(args.data / "labels.csv", dtype={"image": str})
    date = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"pool_{date}.jsonl"
    common = {"dataset": args.data.name, "fraction": args.fraction, "machine": f"cpu: {cpu_model()} x{os.cpu_count()}", "params": args.params.name,
              "overrides": args.overrides, "date": date}
    rows = []
    for seed in args.seeds:
        for share in args.pools:  # appended as each finishes: a long run keeps what it measured
            row = {**common, **run_one(cfg, args.data, predefined, labels, args.fraction, seed, share,
                                       args.work / f"seed{seed}" / f"pool{share:g}")}
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(markdown(rows))
    print(f"wrote {len(rows)} rows to {out} (load average at the end: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
