"""Quality on real data: the label-fraction curve on UCM_mlc with the authors' split.

For each labeled fraction of the train part of `split_seed42.csv` (val and test fixed; test =
433 images) and each mode, train with a params file and evaluate on the test part. No
pretrained weights unless the params file names a local file. Writes:

  bench/results/quality_<date>.jsonl   one line per run, appended as each finishes: dataset,
                                       fraction, mode, seed, split_seed, w, pretrained, labeled,
                                       train_seconds, gpu, val_macro_auprc, macro_auprc, micro_f1,
                                       macro_f1, params, img_size, model, epochs, date
                                       (labeled-only modes train as many optimizer steps as
                                       semi_supervised, unless --equal-epochs)
  --plot PNG                           macro AUPRC vs labeled fraction, one line per mode

and prints the table as markdown (docs/results.md quotes it).

    PYTHONPATH=. python bench/bench_quality.py --params recipes/ucm_cpu.yaml --plot docs/img/fractions_cpu.png
    PYTHONPATH=. python bench/bench_quality.py --fractions 0.1 --modes semi_supervised train.epochs=5
    PYTHONPATH=. python bench/bench_quality.py --seeds 42 1 2 --fractions 0.05 0.1   # seed and split.seed

--seeds: each seed sets both `seed` (initialisation, masks, augmentation, batches) and
`split.seed` (which train images are labeled); val and test stay the predefined ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = ("macro_auprc", "micro_f1", "macro_f1")


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return f"cpu: {model} x{os.cpu_count()}"


def markdown(rows: list[dict]) -> str:
    """One line per fraction; per mode its macro AUPRC, micro F1, macro F1 and training time."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    head = "| labeled fraction | " + " | ".join(
        f"{m} {k}" for m in modes for k in ("macro AUPRC", "micro F1", "macro F1", "train s")) + " |"
    lines = [head, "|" + "---|" * (1 + 4 * len(modes))]
    for fraction in sorted({r["fraction"] for r in rows}):
        cells = []
        for m in modes:
            r = next((r for r in rows if r["fraction"] == fraction and r["mode"] == m), None)
            cells += ["-"] * 4 if r is None else [f"{r[k]:.3f}" for k in METRICS] + [f"{r['train_seconds']:.0f}"]
        lines.append(f"| {fraction:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    p.add_argument("--predefined", type=Path, default=None, help="train/val/test table (default: <data>/split_seed42.csv)")
    p.add_argument("--params", type=Path, default=REPO / "params.yaml", help="the recipe (a params file)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.25])
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="one run per seed (seed and split.seed); default: the params file's")
    p.add_argument("--modes", nargs="+", default=["semi_supervised", "supervised_baseline"],
                   help="semi_supervised, supervised, supervised_baseline")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "quality", help="runs, splits, the image cache")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--plot", type=Path, default=None, help="write the curve as a PNG here")
    p.add_argument("--equal-epochs", action="store_true",
                   help="labeled-only modes get the recipe's epochs (default: as many optimizer steps as semi)")
    p.add_argument("overrides", nargs="*", help="section.key=value on top of the params file")
    args = p.parse_args(argv)

    from sslmae.config import load_config, updated
    from sslmae.fractions import fraction_curve, modes_and_overrides

    try:
        modes, extra = modes_and_overrides(args.modes)
    except ValueError as exc:
        p.error(str(exc))
    args.overrides += extra

    predefined = args.predefined or args.data / "split_seed42.csv"
    if not predefined.is_file():
        print(f"{predefined}: the predefined train/val/test table is missing (UCM_mlc ships split_seed42.csv)",
              file=sys.stderr)
        return 2
    cfg = load_config(args.params, [
        f"data.cache_dir={args.work / 'cache'}", "train.progress_bar=false", *args.overrides, f"data.dir={args.data}",
        "tracking.enabled=false"])
    date = dt.date.today().isoformat()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"quality_{date}.jsonl"
    rows, tables = [], []
    for seed in args.seeds or [cfg.seed]:
        scfg = cfg if args.seeds is None else updated(cfg, {"seed": seed, "split.seed": seed})
        work = args.work if args.seeds is None else args.work / f"seed{seed}"
        for fraction in args.fractions:  # rows appended as they are measured: a long run keeps its results
            table = fraction_curve(scfg, [fraction], modes, work, work / "fractions.csv", predefined,
                                   equal_steps=not args.equal_epochs)
            tables.append(table)
            common = {"dataset": args.data.name, "pretrained": bool(cfg.model.pretrained), "gpu": device_name(),
                      "params": args.params.name, "overrides": args.overrides, "img_size": cfg.data.img_size,
                      "model": cfg.model.backbone, "encoder": cfg.model.variant, "seed": scfg.seed,
                      "split_seed": scfg.split.seed, "date": date}
            new = [{**common, "fraction": r["fraction"], "mode": r["mode"], "epochs": r["epochs"], "w": r["w"],
                    "labeled": r["labeled"], "train_seconds": r["train_seconds"],
                    "val_macro_auprc": r["val_macro_auprc"], **{k: r[f"test_{k}"] for k in METRICS}}
                   for r in table.to_dict("records")]
            with open(out, "a", encoding="utf-8") as fh:
                for row in new:
                    fh.write(json.dumps(row) + "\n")
            rows += new
    table = pd.concat(tables, ignore_index=True)
    if args.plot is not None:
        from sslmae.atomic import atomic_file
        from sslmae.report.plots import label_fraction_curve

        png = label_fraction_curve(table, "macro_auprc", title=f"{args.data.name}: test macro AUPRC ({common['gpu']})")
        with atomic_file(args.plot) as tmp:
            Path(tmp).write_bytes(png)
    print(markdown(rows))
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
