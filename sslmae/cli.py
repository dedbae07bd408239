"""`sslmae <command>`: each command parses arguments and calls one library function.

Errors in user input (params, datasets, split files, model files) print one clear line
on stderr and exit with status 2; no traceback, no partial output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from sslmae.config import ConfigError, load_config

DEFAULT_PARAMS = "params.yaml"


def _params(args) -> "object":
    path = args.params if (args.params != DEFAULT_PARAMS or Path(DEFAULT_PARAMS).exists()) else None
    return load_config(path, args.overrides)


def cmd_synth(args) -> None:
    from sslmae.datasets.synth import write_synthetic

    out = write_synthetic(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {args.n} synthetic scenes ({args.size}px) to {out}")


def cmd_ingest(args) -> None:
    from sslmae.datasets.ingest import ingest

    ingest(args.source, args.out, layout=args.layout, on_bad=args.on_bad, s3_endpoint=args.s3_endpoint,
           max_pixels=args.max_pixels, min_side=args.min_side, workers=args.workers)


def cmd_split(args) -> None:
    from sslmae.split import split_dataset

    table = split_dataset(args.dataset, args.out, fraction=args.fraction, val=args.val, test=args.test,
                          seed=args.seed, predefined_file=args.predefined)
    counts = table["subset"].value_counts().to_dict()
    print(f"wrote {args.out}: " + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("labeled", "unlabeled", "val", "test")))


def cmd_train(args) -> None:
    from sslmae.train.run import train

    cfg = _params(args)
    result = train(cfg)
    print(f"model: {result.checkpoint} (best epoch {result.best_epoch}, {result.seconds:.0f}s)")
    if result.val_metrics:
        print(json.dumps({k: round(v, 4) for k, v in result.val_metrics.items() if isinstance(v, float)}))


def cmd_evaluate(args) -> None:
    from sslmae.evaluate import evaluate

    cfg = _params(args)
    e = cfg.evaluate
    metrics = evaluate(
        args.model or str(Path(cfg.train.out_dir) / "model.pt"),
        args.out or e.out_dir,
        subset=args.subset or e.split,
        dataset_dir=args.dataset,
        split_file=args.split_file,
        threshold=e.threshold,
        batch_size=e.batch_size,
        num_workers=cfg.data.num_workers,
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))


def _add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override params")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslmae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic multi-label aerial dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="validate and normalise a dataset into DIR (manifest.parquet + images/)")
    p.add_argument("source", help="a folder, a .zip/.tar(.gz) archive, or s3://bucket/prefix")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--layout", default="auto",
                   help="auto|labels-csv|ucm-txt|class-folders|bigearthnet|manifest (default: auto, says which)")
    p.add_argument("--on-bad", default="error", choices=["error", "skip"],
                   help="error: stop at the first bad item; skip: list it in ingest_report.json and go on")
    p.add_argument("--s3-endpoint", default=None, help="S3 API URL (default: AWS_ENDPOINT_URL[_S3] or AWS)")
    p.add_argument("--max-pixels", type=int, default=100_000_000, help="larger images are rejected (bomb guard)")
    p.add_argument("--min-side", type=int, default=16, help="images with a smaller side are rejected")
    p.add_argument("--workers", type=int, default=4, help="decoding threads")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("split", help="stratified labeled/unlabeled/val/test split of a dataset")
    p.add_argument("dataset", help="dataset folder (ingested: manifest.parquet, or images/ + labels.csv)")
    p.add_argument("--out", required=True, help="split table to write (CSV: image,subset)")
    p.add_argument("--fraction", type=float, default=0.1, help="labeled fraction of train (0.01 .. 1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.2)
    p.add_argument("--predefined", default=None, help="CSV image,split (train/val/test) to honour")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("train", help="train SSL-MAE as params.yaml says")
    _add_params(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="metric suite of a model on one subset")
    p.add_argument("--model", default=None, help="model file (default: <train.out_dir>/model.pt)")
    p.add_argument("--subset", default=None, help="labeled|unlabeled|val|test|train|all (default: evaluate.split)")
    p.add_argument("--out", default=None, help="output folder (default: evaluate.out_dir)")
    p.add_argument("--dataset", default=None, help="dataset folder (default: the model's)")
    p.add_argument("--split-file", default=None, help="split table (default: the model's)")
    _add_params(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from sslmae.datasets.problems import DatasetError
    from sslmae.split import SplitError

    return (ConfigError, DatasetError, SplitError, FileNotFoundError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable = args.func
    try:
        func(args)
    except _user_errors() as exc:
        print(f"sslmae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
