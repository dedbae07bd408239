"""The argument parser of `sslmae`: one subcommand per library function."""

from __future__ import annotations

import argparse

from sslmae.cli import commands as cmd

def _add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=cmd.DEFAULT_PARAMS, help="params file (default: params.yaml)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override params")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslmae", description="SSL-MAE for remote-sensing multi-label imagery")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic multi-label aerial dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd.cmd_synth)

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
    p.set_defaults(func=cmd.cmd_ingest)

    p = sub.add_parser("split", help="stratified labeled/unlabeled/val/test split of a dataset")
    p.add_argument("dataset", help="dataset folder (ingested: manifest.parquet, or images/ + labels.csv)")
    p.add_argument("--out", required=True, help="split table to write (CSV: image,subset)")
    p.add_argument("--fraction", type=float, default=0.1, help="labeled fraction of train (0 < F <= 1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.2)
    p.add_argument("--predefined", default=None, help="CSV image,split (train/val/test) to honour")
    p.add_argument("--keep", default=None, help="an earlier split table: its images keep their side (frozen test)")
    p.set_defaults(func=cmd.cmd_split)

    p = sub.add_parser("config", help="print the resolved, validated params a run would use (YAML)")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_config)

    p = sub.add_parser("train", help="train SSL-MAE as params.yaml says")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_train)

    p = sub.add_parser("evaluate", help="metric suite of a model on one subset")
    p.add_argument("--model", default=None, help="model file (default: <train.out_dir>/model.pt)")
    p.add_argument("--subset", default=None, help="labeled|unlabeled|val|test|train|all (default: evaluate.split)")
    p.add_argument("--out", default=None, help="output folder (default: evaluate.out_dir)")
    p.add_argument("--dataset", default=None, help="dataset folder (default: the model's)")
    p.add_argument("--split-file", default=None, help="split table (default: the model's)")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_evaluate)

    p = sub.add_parser("grid", help="SSL-MAE-GS: a trial per w in grid.ws + the learnable-w trial, then select")
    p.add_argument("--out", default=None, help="where the selection goes (default: grid.selected_dir)")
    p.add_argument("--trial", default=None, help="run only this trial (w0.3, learned, ...): the fan-out unit")
    p.add_argument("--select-only", action="store_true", help="only the fan-in: select among finished trials")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_grid)

    p = sub.add_parser("register", help="register a model in MLflow as @challenger")
    p.add_argument("--model", required=True)
    p.add_argument("--metrics", default=None, help="metrics.json to attach (e.g. the test evaluation)")
    p.add_argument("--out", default=None, help="write the registration (name, version) as JSON here")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_register)

    p = sub.add_parser("promote", help="move @champion to @challenger if it is better on the frozen test split")
    p.add_argument("--dataset", default=None)
    p.add_argument("--split-file", default=None)
    p.add_argument("--subset", default="test")
    p.add_argument("--out", default=None, help="write the decision as JSON here")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_promote)

    p = sub.add_parser("predict", help="probabilities and labels for a folder, archive or s3:// prefix of images")
    p.add_argument("--model", required=True, help="model file or models:/NAME@ALIAS")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, help="predictions .csv or .parquet")
    p.add_argument("--thresholds", default="tuned", help="tuned (per class, from validation) or a number")
    p.add_argument("--s3-endpoint", default=None)
    _add_params(p)
    p.set_defaults(func=cmd.cmd_predict)

    p = sub.add_parser("pipeline", help="Kubeflow: compile | run-local | run-containers | submit | schedule")
    p.add_argument("action", choices=list(cmd.PIPELINE_ACTIONS))
    p.add_argument("--out", default="pipeline.yaml", help="compiled pipeline YAML (compile, schedule)")
    p.add_argument("--parallelism", type=int, default=4, help="grid trials at once")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per training task (per pod with --nodes)")
    p.add_argument("--nodes", type=int, default=1, help="> 1: each trial is a multi-node job over this many pods")
    p.add_argument("--trainer", default="v1", choices=["v1", "v2"],
                   help="with --nodes: v1 Training Operator PyTorchJob, v2 Kubeflow Trainer TrainJob")
    p.add_argument("--image", default=None,
                   help="the image every step runs in (default: $SSLMAE_IMAGE; run-containers: sslmae:dev)")
    p.add_argument("--root", default=None,
                   help="run-local / run-containers: the run folder (default runs/kfp-local, runs/kfp-containers)")
    p.add_argument("--source", default="", help="dataset source (default: data.source; run-local: synthetic)")
    p.add_argument("--frozen-split", default="",
                   help="submit/schedule: a path or s3:// URI where the split persists across runs (frozen test set)")
    p.add_argument("--store", default="",
                   help="submit/schedule: s3://bucket/prefix for the dataset by reference and trial checkpoints")
    p.add_argument("--host", default=None, help="Kubeflow Pipelines API (default: $KFP_HOST)")
    p.add_argument("--namespace", default=None,
                   help="submit/schedule: the Kubeflow profile namespace (multi-user; default: $KFP_NAMESPACE)")
    p.add_argument("--experiment", default="sslmae")
    p.add_argument("--cron", default=None, help="schedule: cron expression with seconds, e.g. '0 0 3 * * *'")
    _add_params(p)
    p.set_defaults(func=cmd.cmd_pipeline)

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
    p.set_defaults(func=cmd.cmd_fractions)

    p = sub.add_parser("report", help="self-contained HTML report of a run or a grid")
    p.add_argument("--run", default=None, help="a training out_dir")
    p.add_argument("--grid", default=None, help="a grid selection dir (trials.csv)")
    p.add_argument("--eval", default=None, help="an evaluation out_dir")
    p.add_argument("--fractions", default=None, help="CSV fraction,mode,<metric>: the label-fraction curve")
    p.add_argument("--out", required=True, help="report .html")
    _add_params(p)  # tracking: a grid's report is also logged to its MLflow parent run
    p.set_defaults(func=cmd.cmd_report)
    return parser


