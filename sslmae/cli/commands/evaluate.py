"""`sslmae evaluate`: a model's metric suite on the rows params name (`data.dir`, `data.split_file`,
`evaluate`); the promotion gate scores the same rows."""

import json
from pathlib import Path

from sslmae.cli.params import add_params, knob_flag, load_params
from sslmae.evaluate import evaluate_as_configured


def add_arguments(p) -> None:
    p.add_argument("--model", default=None, help="model file (default: <train.out_dir>/model.pt)")
    knob_flag(p, "--subset", "evaluate.split", "labeled|unlabeled|val|test|train|all")
    knob_flag(p, "--out", "evaluate.out_dir", "output folder")
    knob_flag(p, "--dataset", "data.dir", "dataset folder")
    knob_flag(p, "--split-file", "data.split_file", "split table")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    model = args.model or str(Path(cfg.train.out_dir) / "model.pt")
    metrics = evaluate_as_configured(cfg, model, cfg.evaluate.out_dir)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))
