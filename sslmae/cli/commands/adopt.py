"""`sslmae adopt`: a registered model made before sslmae recorded which data a model belongs to
becomes the registered model of this data (params `tracking.registered_model`, `data.dir`,
`data.split_file`), so retraining on this data is compared with its champion again."""

from sslmae.cli.params import add_params, knob_flag, load_params
from sslmae.tracking.data_identity import adopt, data_identity
from sslmae.tracking.runs import check_tracking, client


def add_arguments(p) -> None:
    knob_flag(p, "--dataset", "data.dir", "the dataset its models were trained on")
    knob_flag(p, "--split-file", "data.split_file", "the split table they were trained on")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    check_tracking(cfg.tracking)
    identity = data_identity(cfg.data.dir, cfg.data.split_file)
    name = cfg.tracking.registered_model
    changed = adopt(client(cfg.tracking), name, identity)
    print(f"{name} {'now belongs' if changed else 'already belongs'} to this data (key {identity.short})")
