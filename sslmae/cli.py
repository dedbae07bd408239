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

from sslmae.config import Config, ConfigError, load_config

DEFAULT_PARAMS = "params.yaml"


def _params(args) -> Config:
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
                          seed=args.seed, predefined_file=args.predefined, keep_file=args.keep)
    counts = table["subset"].value_counts().to_dict()
    print(f"wrote {args.out}: " + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("labeled", "unlabeled", "val", "test")))


def cmd_train(args) -> None:
    from sslmae.train.run import train

    cfg = _params(args)
    result = train(cfg)
    if not result.rank_zero:
        return
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
        tracking=cfg,
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))


def cmd_grid(args) -> None:
    from sslmae import grid

    cfg = _params(args)
    if args.trial:
        result = grid.run_trial(cfg, args.trial)
        print(f"trial {args.trial}: {result.checkpoint}")
        return
    out = args.out or cfg.grid.selected_dir
    selected = grid.select(cfg, out) if args.select_only else grid.grid(cfg, out)
    print(f"selected {selected['trial']} ({selected['metric']} = {selected['value']:.4f}) -> {selected['model']}")


def cmd_register(args) -> None:
    from sslmae.tracking.registry import register

    cfg = _params(args)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    info = register(cfg, args.model, metrics, out=args.out)
    print(f"registered {info['name']} version {info['version']} as @{info['alias']}")


def cmd_promote(args) -> None:
    from sslmae.tracking.registry import promote

    cfg = _params(args)
    d = promote(cfg, args.dataset or cfg.data.dir, args.split_file or cfg.data.split_file, args.subset, out=args.out)
    champ = f"{d['champion_score']:.4f}" if d["champion_score"] is not None else "none"
    print(f"{d['metric']} on {d['subset']}: challenger v{d['challenger_version']} {d['challenger_score']:.4f}, "
          f"champion {champ} -> {'promoted' if d['promoted'] else 'kept'}; champion is v{d['champion_now']}")


def cmd_predict(args) -> None:
    from sslmae.predict import predict

    cfg = _params(args)
    predict(args.model, args.input, args.out, thresholds=args.thresholds, cfg=cfg, s3_endpoint=args.s3_endpoint)


def cmd_fractions(args) -> None:
    from sslmae.fractions import fraction_curve, modes_and_overrides

    modes, extra = modes_and_overrides(args.modes)
    args.overrides = list(args.overrides) + extra
    table = fraction_curve(_params(args), args.fractions, modes, args.work, args.out, args.predefined,
                           args.equal_steps)
    print(table.to_string(index=False))


def cmd_report(args) -> None:
    from sslmae.report.build import build_report

    path = build_report(run_dir=args.run, grid_dir=args.grid, eval_dir=args.eval, fractions=args.fractions,
                        out=args.out)
    print(f"wrote {path}")


def _pipeline_compile(args, cfg, kfp_cli) -> None:
    print(f"wrote {kfp_cli.compile_pipeline(cfg, args.out, args.parallelism, args.gpus, args.nodes)}")


def _pipeline_run_local(args, cfg, kfp_cli) -> None:
    cfg = load_config(args.params if Path(args.params).exists() else None,
                      kfp_cli.LOCAL_OVERRIDES + list(args.overrides))
    root = Path(args.root).resolve()
    source = args.source
    if not source:  # the embedded dataset, made on the spot
        from sslmae.datasets.synth import write_synthetic

        source = str(write_synthetic(root / "synth", n=cfg.synth.n, size=cfg.synth.size, seed=cfg.synth.seed))
    kfp_cli.run_local(cfg, root / "pipeline_root", source)
    print(f"local pipeline run finished; artifacts under {root / 'pipeline_root'}")


def _pipeline_submit(args, cfg, kfp_cli) -> None:
    rid = kfp_cli.submit(cfg, args.host, args.experiment, args.source, args.parallelism, args.gpus, args.nodes,
                         args.frozen_split)
    print(f"submitted run {rid}")


def _pipeline_schedule(args, cfg, kfp_cli) -> None:
    if not args.cron:
        raise ValueError("schedule: --cron is required (6 fields, seconds first, e.g. '0 0 3 * * *')")
    rid = kfp_cli.schedule(cfg, args.host, args.experiment, args.cron, args.source, args.out, args.parallelism,
                           args.gpus, args.nodes, args.frozen_split)
    print(f"recurring run {rid}: {args.cron}")


PIPELINE_ACTIONS = {"compile": _pipeline_compile, "run-local": _pipeline_run_local, "submit": _pipeline_submit,
                    "schedule": _pipeline_schedule}


def cmd_pipeline(args) -> None:
    from sslmae.pipeline import kfp_cli

    PIPELINE_ACTIONS[args.action](args, _params(args), kfp_cli)


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
    p.add_argument("--keep", default=None, help="an earlier split table: its images keep their side (frozen test)")
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

    p = sub.add_parser("grid", help="SSL-MAE-GS: a trial per w in grid.ws + the learnable-w trial, then select")
    p.add_argument("--out", default=None, help="where the selection goes (default: grid.selected_dir)")
    p.add_argument("--trial", default=None, help="run only this trial (w0.3, learned, ...): the fan-out unit")
    p.add_argument("--select-only", action="store_true", help="only the fan-in: select among finished trials")
    _add_params(p)
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("register", help="register a model in MLflow as @challenger")
    p.add_argument("--model", required=True)
    p.add_argument("--metrics", default=None, help="metrics.json to attach (e.g. the test evaluation)")
    p.add_argument("--out", default=None, help="write the registration (name, version) as JSON here")
    _add_params(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("promote", help="move @champion to @challenger if it is better on the frozen test split")
    p.add_argument("--dataset", default=None)
    p.add_argument("--split-file", default=None)
    p.add_argument("--subset", default="test")
    p.add_argument("--out", default=None, help="write the decision as JSON here")
    _add_params(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("predict", help="probabilities and labels for a folder, archive or s3:// prefix of images")
    p.add_argument("--model", required=True, help="model file or models:/NAME@ALIAS")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="predictions .csv or .parquet")
    p.add_argument("--thresholds", default="tuned", help="tuned (per class, from validation) or a number")
    p.add_argument("--s3-endpoint", default=None)
    _add_params(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("pipeline", help="Kubeflow: compile | run-local | submit | schedule")
    p.add_argument("action", choices=list(PIPELINE_ACTIONS))
    p.add_argument("--out", default="pipeline.yaml", help="compiled pipeline YAML (compile, schedule)")
    p.add_argument("--parallelism", type=int, default=4, help="grid trials at once")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per training task (per pod with --nodes)")
    p.add_argument("--nodes", type=int, default=1, help="> 1: each trial is a PyTorchJob over this many pods")
    p.add_argument("--root", default="runs/kfp-local", help="run-local: where artifacts go")
    p.add_argument("--source", default="", help="dataset source (default: data.source; run-local: synthetic)")
    p.add_argument("--frozen-split", default="",
                   help="submit/schedule: a path or s3:// URI where the split persists across runs (frozen test set)")
    p.add_argument("--host", default=None, help="Kubeflow Pipelines API (default: $KFP_HOST)")
    p.add_argument("--experiment", default="sslmae")
    p.add_argument("--cron", default=None, help="schedule: cron expression with seconds, e.g. '0 0 3 * * *'")
    _add_params(p)
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("fractions", help="label-fraction curve: train + test per fraction and mode")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.25])
    p.add_argument("--modes", nargs="+", default=["semi_supervised", "supervised_baseline"],
                   help="semi_supervised, supervised, supervised_baseline")
    p.add_argument("--work", default="runs/fractions", help="where the runs go")
    p.add_argument("--out", default="runs/fractions.csv")
    p.add_argument("--predefined", default=None,
                   help="CSV image,split (train/val/test) that fixes val and test, e.g. split_seed42.csv")
    p.add_argument("--equal-steps", action="store_true",
                   help="labeled-only modes train as many optimizer steps as semi_supervised (more epochs)")
    _add_params(p)
    p.set_defaults(func=cmd_fractions)

    p = sub.add_parser("report", help="self-contained HTML report of a run or a grid")
    p.add_argument("--run", default=None, help="a training out_dir")
    p.add_argument("--grid", default=None, help="a grid selection dir (trials.csv)")
    p.add_argument("--eval", default=None, help="an evaluation out_dir")
    p.add_argument("--fractions", default=None, help="CSV fraction,mode,<metric>: the label-fraction curve")
    p.add_argument("--out", required=True, help="report .html")
    p.set_defaults(func=cmd_report)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from sslmae.datasets.problems import DatasetError
    from sslmae.split import SplitError

    return (ConfigError, DatasetError, SplitError, FileNotFoundError, ValueError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may also follow the options (argparse stops collecting positionals there)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable = args.func
    try:
        func(args)
    except _user_errors() as exc:
        print(f"sslmae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # the run diverged; the last good checkpoint is kept
        print(f"sslmae {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
