"""Plot quality JSON lines (bench_quality.py's output) as label-fraction curves, one line per
configuration: the mode, the params file, the overrides (the cache folder left out) and, for
labeled-only modes, whether they trained as many epochs or as many steps as semi_supervised.
Runs of one configuration and fraction with different seeds are one point: their mean, with the
standard deviation as an error bar; the table printed (markdown) says mean ± sd (n runs).

    python bench/plot_quality.py bench/results/quality_seeds_2026-11-30.jsonl --out docs/img/fractions_cpu.png
    python bench/plot_quality.py runs.jsonl --out curve.png --metric val_macro_auprc
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def label(row: dict, semi_epochs: set[int]) -> str:
    knobs = [o for o in row.get("overrides", []) if not o.startswith("data.cache_dir=")]
    name = row["mode"] + (f" [{row['params']}]" if row.get("params") not in (None, "params.yaml") else "")
    name += "".join(f" {k}" for k in knobs)
    if row["mode"] != "semi_supervised" and semi_epochs:
        name += " (equal epochs)" if row.get("epochs") in semi_epochs else " (equal steps)"
    return name


def table(paths: list[Path], metric: str = "macro_auprc") -> pd.DataFrame:
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    semi = {r.get("epochs") for r in rows if r["mode"] == "semi_supervised"}
    return pd.DataFrame([{"fraction": r["fraction"], "mode": label(r, semi), metric: r.get(metric),
                          "seed": r.get("seed")} for r in rows])


def summary(data: pd.DataFrame, metric: str) -> str:
    """Markdown: one row per fraction, one column per configuration, 'mean ± sd (n)'."""
    stats = data.groupby(["fraction", "mode"])[metric].agg(["mean", "std", "count"])
    modes = list(dict.fromkeys(data["mode"]))
    lines = ["| labeled fraction | " + " | ".join(modes) + " |", "|" + "---|" * (len(modes) + 1)]
    for fraction in sorted(data["fraction"].unique()):
        cells = []
        for m in modes:
            if (fraction, m) not in stats.index:
                cells.append("-")
                continue
            mean, sd, n = stats.loc[(fraction, m)]
            cells.append(f"{mean:.3f}" + (f" ± {sd:.3f} ({int(n)})" if n > 1 else " (1)"))
        lines.append(f"| {fraction:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsonl", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default=None)
    p.add_argument("--metric", default="macro_auprc", help="a key of the JSON lines (default: test macro_auprc)")
    args = p.parse_args(argv)

    from sslmae.atomic import atomic_file
    from sslmae.report.plots import label_fraction_curve

    data = table(args.jsonl, args.metric)
    with atomic_file(args.out) as tmp:
        Path(tmp).write_bytes(label_fraction_curve(data, args.metric, title=args.title))
    print(summary(data, args.metric))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
