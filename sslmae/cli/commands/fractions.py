"""`sslmae fractions`: the label-fraction curve (train + test per fraction and mode)."""

from sslmae.cli.params import add_params, load_params
from sslmae.fractions import fraction_curve, modes_and_overrides


def add_arguments(p) -> None:
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.25])
    p.add_argument("--modes", nargs="+", default=["semi_supervised", "supervised_baseline"],
                   help="semi_supervised, supervised, supervised_baseline")
    p.add_argument("--work", default="runs/fractions", help="where the runs go")
    p.add_argument("--out", default="runs/fractions.csv")
    p.add_argument("--predefined", default=None,
                   help="CSV image,split (train/val/test) that fixes val and test, e.g. split_seed42.csv")
    p.add_argument("--equal-steps", action="store_true",
                   help="labeled-only modes train as many optimizer steps as semi_supervised (more epochs)")
    add_params(p)


def run(args) -> None:
    modes, extra = modes_and_overrides(args.modes)
    args.overrides = list(args.overrides) + extra
    table = fraction_curve(load_params(args), args.fractions, modes, args.work, args.out, args.predefined,
                           args.equal_steps)
    print(table.to_string(index=False))
