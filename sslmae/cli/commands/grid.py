"""`sslmae grid`: the grid's trials (params `grid.trials`) and the selection, or one of them."""

from sslmae import grid
from sslmae.cli.params import add_params, knob_flag, load_params


def add_arguments(p) -> None:
    knob_flag(p, "--out", "grid.selected_dir", "where the selection goes")
    p.add_argument("--trial", default=None, help="run only this trial of grid.trials: the fan-out unit")
    p.add_argument("--select-only", action="store_true", help="only the fan-in: select among finished trials")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    if args.trial:
        result = grid.run_trial(cfg, args.trial)
        print(f"trial {args.trial}: " + (f"skipped: loss.mode {cfg.loss.mode} does not run it" if result is None
                                         else str(result.checkpoint)))
        return
    out = cfg.grid.selected_dir
    selected = grid.select(cfg, out) if args.select_only else grid.grid(cfg, out)
    print(f"selected {selected['trial']} ({selected['metric']} = {selected['value']:.4f}) -> {selected['model']}")
