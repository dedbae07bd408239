"""The argument parser of `sslmae`: one subcommand per module of `sslmae.cli.commands`, each
declaring its own arguments (`add_arguments`) and its action (`run`)."""

from __future__ import annotations

import argparse

from sslmae.cli.commands import (adopt, config, deploy, evaluate, fractions, grid, ingest, pipeline, predict, promote,
                                 register, report, serve, split, synth, train)

# in the order `sslmae --help` lists them
COMMANDS = {"synth": synth, "ingest": ingest, "split": split, "config": config, "train": train,
            "evaluate": evaluate, "grid": grid, "register": register, "promote": promote, "adopt": adopt, "predict": predict, "serve": serve,
            "deploy": deploy,
            "pipeline": pipeline, "fractions": fractions, "report": report}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslmae", description="SSL-MAE for remote-sensing multi-label imagery")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP)
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
