"""`build_report(...)`: the HTML report of a run or of a grid, written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sslmae.outputs import claim_file
from sslmae.report.markup import is_report, write_report
from sslmae.report.pages import render_grid, render_run


def build_report(out: str | Path, run_dir: str | Path | None = None, grid_dir: str | Path | None = None,
                 eval_dir: str | Path | None = None, fractions: str | Path | None = None,
                 dataset: str | Path | None = None) -> Path:
    """Exactly one of run_dir (a training out_dir) or grid_dir (a grid selection folder);
    eval_dir: an evaluation's output; fractions: a CSV `fraction,mode,<metric>` for the
    label-fraction curve; dataset: the ingested dataset, for sample tiles of a model with bands."""
    if (run_dir is None) == (grid_dir is None):
        raise ValueError("report: give exactly one of --run or --grid")
    claim_file(out, "report", is_report)  # before any work
    ev = Path(eval_dir) if eval_dir else None
    if run_dir is not None:
        page = render_run(Path(run_dir), ev, dataset or None)
    else:
        table = None
        if fractions is not None:
            if not Path(fractions).is_file():
                raise FileNotFoundError(f"{fractions}: label-fraction table not found")
            table = pd.read_csv(fractions)
        page = render_grid(Path(grid_dir), ev, table, dataset or None)
    return write_report(page, Path(out))
