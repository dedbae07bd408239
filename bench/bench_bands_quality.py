"""Do the other bands help? All 12 bands against RGB only, on the synthetic Sentinel-2-like set.

`sslmae synth --bands 12` writes scenes whose eight labels show in the visible bands and two more
(`irrigated`, `mineral`) only in the infrared ones (sslmae.datasets.synth_bands). The same scenes
are ingested twice, with data.bands=all and with data.bands=[B04, B03, B02] (RGB at 16 bits, through the
same reading and normalisation), split once per seed, trained with the params file (+ overrides) and
scored on the test part. Writes

  bench/results/bands_quality_<date>.jsonl   one line per run: bands, seed, images, epochs,
                                             train_seconds, macro_auprc, ap_<label> for every label,
                                             machine, params, overrides, date

and prints a markdown table (docs/results.md quotes it).

    PYTHONPATH=. python bench/bench_bands_quality.py --seeds 0 1 2 train.epochs=15
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

READINGS = {"all 12 bands": "all", "RGB only (B04, B03, B02)": ["B04", "B03", "B02"]}


def run_one(cfg, source: Path, bands, seed: int, work: Path) -> dict:
    from sslmae.config import updated
    from sslmae.datasets.ingest import ingest
    from sslmae.evaluate import evaluate
    from sslmae.split import split_dataset
    from sslmae.train.run import train

    ds, split = work / "dataset", work / "split.csv"
    if not ds.exists():
        ingest(str(source), ds, unlabeled=[str(source / "unlabeled")], bands=bands, log=lambda m: None)
    split_dataset(ds, split, fraction=None, seed=seed)
    rcfg = updated(cfg, {"seed": seed, "data.dir": str(ds), "data.split_file": str(split),
                         "train.out_dir": str(work / f"train{seed}"), "data.cache_dir": str(work / "cache")})
    t0 = time.monotonic()
    result = train(rcfg)
    seconds = time.monotonic() - t0
    metrics = evaluate(result.checkpoint, work / f"eval{seed}", ds, split, subset="test",
                       cache_dir=rcfg.data.cache_dir)
    per_class = pd.read_csv(work / f"eval{seed}" / "per_class.csv")
    return {"seed": seed, "epochs": rcfg.train.epochs, "train_seconds": round(seconds, 1),
            "macro_auprc": metrics["macro_auprc"], "micro_f1": metrics["micro_f1"],
            **{f"ap_{r.label}": round(float(r.ap), 4) for r in per_class.itertuples()}}


def markdown(rows: list[dict], hidden: tuple[str, ...]) -> str:
    """Per reading: mean and spread over seeds of test macro AUPRC, and of the AP of the labels only
    infrared shows and of the visible ones."""
    frame = pd.DataFrame(rows)
    ap = [c for c in frame.columns if c.startswith("ap_")]
    seen = [c for c in ap if c[3:] not in hidden]
    frame["ap_hidden"] = frame[[f"ap_{h}" for h in hidden]].mean(axis=1)
    frame["ap_visible"] = frame[seen].mean(axis=1)
    lines = ["| bands | runs | macro AUPRC | AP of the 2 infrared-only labels | AP of the 8 visible labels |",
             "|---|---|---|---|---|"]
    for name, group in frame.groupby("bands", sort=False):
        cells = [f"{group[k].mean():.3f} ± {group[k].std(ddof=0):.3f}" for k in ("macro_auprc", "ap_hidden", "ap_visible")]
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    p.add_argument("--n", type=int, default=600, help="labeled scenes (and as many without labels)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bands_quality")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("overrides", nargs="*", help="section.key=value on top of the params file")
    args = p.parse_args(argv)

    from bench.machine import cpu_model
    from sslmae.config import load_config
    from sslmae.datasets.synth import write_synthetic
    from sslmae.datasets.synth_bands import HIDDEN

    cfg = load_config(args.params, ["train.progress_bar=false", "tracking.enabled=false", *args.overrides])
    source = args.work / "synth"
    if not source.exists():
        write_synthetic(source, n=args.n, size=cfg.data.img_size, seed=0, unlabeled=args.n, bands=12)
    date = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bands_quality_{date}.jsonl"
    common = {"dataset": f"synth --bands 12, n={args.n} + {args.n} unlabeled, {cfg.data.img_size} px",
              "machine": f"cpu: {cpu_model()} x{os.cpu_count()}", "params": args.params.name,
              "overrides": args.overrides, "date": date}
    rows = []
    for seed in args.seeds:
        for name, bands in READINGS.items():  # appended as each finishes: a long run keeps what it measured
            row = {**common, "bands": name, **run_one(cfg, source, bands, seed, args.work / str(bands))}
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(markdown(rows, HIDDEN))
    print(f"wrote {len(rows)} rows to {out} (load average at the end: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
