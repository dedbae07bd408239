"""`sslmae report`: the self-contained HTML report of a run or a grid (logged to the grid's MLflow
run when params track)."""

from pathlib import Path

from sslmae.cli.params import add_params, load_params
from sslmae.report.build import build_report
from sslmae.tracking.grid_log import log_report


def add_arguments(p) -> None:
    p.add_argument("--run", default=None, help="a training out_dir")
    p.add_argument("--grid", default=None, help="a grid selection dir (trials.csv)")
    p.add_argument("--eval", default=None, help="an evaluation out_dir")
    p.add_argument("--fractions", default=None, help="CSV fraction,mode,<metric>: the label-fraction curve")
    p.add_argument("--dataset", default=None, help="the ingested dataset: sample tiles of a model with bands")
    p.add_argument("--out", required=True, help="report .html")
    add_params(p)  # tracking: a grid's report is also logged to its MLflow parent run


def run(args) -> None:
    path = build_report(run_dir=args.run, grid_dir=args.grid, eval_dir=args.eval, fractions=args.fractions,
                        dataset=args.dataset, out=args.out)
    logged = log_report(load_params(args).tracking, Path(args.grid), path) if args.grid else None
    print(f"wrote {path}" + (f" (and to the grid's MLflow run {logged})" if logged else ""))
