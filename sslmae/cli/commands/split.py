"""`sslmae split`: the labeled/unlabeled/val/test table (params `data.dir`, `data.split_file`,
`split`). With split.frozen (default) an existing table is carried forward: its images keep their
side and only new images are stratified; `<table>.history.csv` beside it says which images joined
which subset in which split run."""

from sslmae.cli.params import add_params, knob_flag, knob_positional, load_params
from sslmae.split import history_file, split_dataset


def add_arguments(p) -> None:
    knob_positional(p, "data.dir", "DATASET", "dataset folder (ingested: manifest.parquet, or images/ + labels.csv)")
    knob_flag(p, "--out", "data.split_file", "split table to write (CSV: image,subset)")
    knob_flag(p, "--fraction", "split.fraction", "labeled fraction of train (0 < F <= 1)")
    knob_flag(p, "--val", "split.val", "validation share")
    knob_flag(p, "--test", "split.test", "test share")
    knob_flag(p, "--seed", "split.seed", "random seed")
    p.add_argument("--predefined", default=None, help="CSV image,split (train/val/test) to honour")
    p.add_argument("--keep", default=None, help="an earlier split table: its images keep their side (frozen test); "
                   "default with split.frozen: the table at --out, when there is one")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    s = cfg.split
    table = split_dataset(cfg.data.dir, cfg.data.split_file, fraction=s.fraction, val=s.val, test=s.test, seed=s.seed,
                          predefined_file=args.predefined, keep_file=args.keep, frozen=s.frozen,
                          history=history_file(cfg.data.split_file))
    counts = table["subset"].value_counts().to_dict()
    print(f"wrote {cfg.data.split_file}: "
          + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("labeled", "unlabeled", "val", "test")))
