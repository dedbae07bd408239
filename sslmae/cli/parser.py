"""The argument parser of `sslmae`: one subcommand per module of `sslmae.cli.commands`, each
declaring its own arguments (`add_arguments`) and its action (`run`)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

# every command, in the order `sslmae --help` lists them, with its one-line help; its module
# (sslmae.cli.commands.<name>, with `add_arguments` and `run`) is imported only when it runs: the
# commands import their library code (Lightning, MLflow, kfp), seconds that `sslmae synth` need not spend
COMMANDS = {
    "synth": "write the synthetic multi-label aerial dataset",
    "ingest": "validate and normalise a dataset into DIR (manifest.parquet + images/ or shards/)",
    "split": "stratified labeled/unlabeled/val/test split of a dataset",
    "config": "print the resolved, validated params a run would use (YAML)",
    "train": "train SSL-MAE as params.yaml says",
    "evaluate": "metric suite of a model on one subset",
    "grid": "SSL-MAE-GS: a trial per name in grid.trials (w0.3, learned, ...), then select",
    "register": "register a model in MLflow as @challenger",
    "promote": "move @champion to @challenger if it is better on the frozen test split",
    "adopt": "record this data on a registered model that records none (registered before sslmae recorded data)",
    "predict": "probabilities and labels for a folder, archive or s3:// prefix of images, or an ingested dataset",
    "serve": "serve a model file or registry version over KServe's v1/v2 REST protocols, with dynamic batching",
    "deploy": "roll a registry version out to a KServe InferenceService (--canary P), or --promote / --rollback it",
    "pipeline": "Kubeflow: compile | run-local | run-containers | submit | schedule",
    "fractions": "label-fraction curve: train + test per fraction and mode",
    "report": "self-contained HTML report of a run or a grid",
}


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"sslmae.cli.commands.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed; `command`'s own arguments and action are added (its
    module imported) when it is the one to run."""
    parser = argparse.ArgumentParser(prog="sslmae", description="SSL-MAE for remote-sensing multi-label imagery")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help in COMMANDS.items():
        p = sub.add_parser(name, help=help)
        if name == command:
            module = command_module(name)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def split_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Overrides may also follow the options (argparse stops collecting positionals there);
    anything else left over is an error."""
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
