"""`sslmae promote`: @champion moves to @challenger only if it wins on the rows `sslmae evaluate`
scores (params `data.dir`, `data.split_file`, `evaluate.split`, `tracking.promote_margin`), and
never on images either model trained on unless `tracking.allow_overlap`."""

from sslmae.cli.params import add_params, knob_flag, knob_switch, load_params
from sslmae.release import promote
from sslmae.tracking.data_identity import data_identity


def add_arguments(p) -> None:
    knob_flag(p, "--dataset", "data.dir", "dataset folder")
    knob_flag(p, "--split-file", "data.split_file", "split table")
    knob_flag(p, "--subset", "evaluate.split", "the subset both models are scored on")
    knob_switch(p, "--allow-overlap", "tracking.allow_overlap",
                "score a model even on images it trained on (refused otherwise: the comparison would be unfair)")
    p.add_argument("--out", default=None, help="write the decision as JSON here")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    d = promote(cfg, data_identity(cfg.data.dir, cfg.data.split_file), out=args.out)
    champ = f"{d['champion_score']:.4f}" if d["champion_score"] is not None else "none"
    print(f"{d['name']}: {d['metric']} on {d['subset']}: challenger v{d['challenger_version']} {d['challenger_score']:.4f}, "
          f"champion {champ} -> {'promoted' if d['promoted'] else 'kept'}; champion is v{d['champion_now']}; "
          f"images they trained on among those scored: "
          + ", ".join(f"{role} {'unknown' if n is None else n}" for role, n in d["overlap"].items()))
