"""`sslmae <command>`: each command parses arguments and calls one library function.

Errors in user input (params, datasets, split files, model files) print one clear line
on stderr and exit with status 2; no traceback, no partial output.
"""

from __future__ import annotations

import sys
from typing import Callable

from sslmae.cli.parser import build_parser
from sslmae.config import ConfigError
from sslmae.datasets.problems import DatasetError
from sslmae.split import SplitError

USER_ERRORS = (ConfigError, DatasetError, SplitError, FileNotFoundError, ValueError)


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
    except USER_ERRORS as exc:
        print(f"sslmae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # the run diverged; the last good checkpoint is kept
        print(f"sslmae {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0
