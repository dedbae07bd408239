"""`sslmae register`: a model becomes @challenger in the MLflow registry (params `tracking`), in the
registered model of the data it was split and trained on (params `data.dir`, `data.split_file`;
sslmae.tracking.data_identity)."""

import json
from pathlib import Path

from sslmae.cli.params import add_params, knob_flag, load_params
from sslmae.release import register
from sslmae.tracking.data_identity import data_identity


def add_arguments(p) -> None:
    p.add_argument("--model", required=True)
    knob_flag(p, "--dataset", "data.dir", "the dataset the model was trained on")
    knob_flag(p, "--split-file", "data.split_file", "the split table it was trained on")
    p.add_argument("--metrics", default=None, help="metrics.json to attach (e.g. the test evaluation)")
    p.add_argument("--out", default=None, help="write the registration (name, version) as JSON here")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    info = register(cfg, args.model, metrics, data_identity(cfg.data.dir, cfg.data.split_file), out=args.out)
    if info["created"]:
        print(f"registered {info['name']} version {info['version']} as @{info['alias']} (from run {info['run_id']})")
    else:
        print(f"already registered: {info['name']} version {info['version']} holds these weights; "
              f"it is @{info['alias']}")
