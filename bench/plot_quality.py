"""Plot quality JSON lines (bench_quality.py's output) as label-fraction curves, one line per
configuration: the mode, the params file, the overrides (the cache folder left out) and, for
labeled-only modes, whether they trained as many epochs or as many steps as semi_supervised.

    python bench/plot_quality.py bench/results/quality_2026-11-26.jsonl --out docs/img/fractions_cpu.png
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


def table(paths: list[Path]) -> pd.DataFrame:
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]
    semi = {r.get("epochs") for r in rows if r["mode"] == "semi_supervised"}
    return pd.DataFrame([{"fraction": r["fraction"], "mode": label(r, semi), "macro_auprc": r["macro_auprc"]}
                         for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsonl", type=Path, nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)

    from sslmae.atomic import atomic_file
    from sslmae.report.plots import label_fraction_curve

    data = table(args.jsonl)
    with atomic_file(args.out) as tmp:
        Path(tmp).write_bytes(label_fraction_curve(data, "macro_auprc", title=args.title))
    print(data.pivot_table(index="fraction", columns="mode", values="macro_auprc").round(3).to_string())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
