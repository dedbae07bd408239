"""`sslmae <command>`: parse, run the command, and say how it ended.

Every failure is one line on stderr: a problem with the input, the output location, the disk,
the tracking server or a checkpoint exits 2; a diverged run exits 1; Ctrl-C (SIGINT) exits 130
and SIGTERM (what Kubernetes and DVC send) 143, after the command's temporaries are removed.
No traceback, no partial output. Credentials in URIs are masked in everything the command prints
(sslmae.redact).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from typing import Callable, Iterator

from sslmae.atomic import DISK_ERRNOS
from sslmae.cli.parser import COMMANDS, build_parser, split_overrides
from sslmae.redact import redacted_output

# ValueError covers ConfigError, DatasetError, SourceError, SplitError, OutputError, TrackingError
USER_ERRORS = (ValueError, FileNotFoundError)
# a place the command must write refuses (full, read-only, not allowed): the user's to fix, in one line
WRITE_ERRNOS = DISK_ERRNOS | {errno.EACCES, errno.EPERM}


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is, so that every `finally` and atomic write cleans up.
    A BaseException, like KeyboardInterrupt: `except Exception` handlers do not swallow it."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lightning_sigterm() -> tuple[type[BaseException], ...]:
    """Lightning's own SIGTERM exception, when the command imported Lightning (training does; a
    command that does not, such as synth or ingest, need not spend seconds importing it)."""
    exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")
    return (exceptions.SIGTERMException,) if exceptions else ()


def _service_errors() -> tuple[type[BaseException], ...]:
    """MLflow's own exceptions, when MLflow was imported by the command (it is optional)."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    return (mlflow_exceptions.MlflowException,) if mlflow_exceptions else ()


def _run(func: Callable, args) -> int:
    say = f"sslmae {args.command}:"
    try:
        with _sigterm_raises():
            func(args)
    except KeyboardInterrupt:
        print(f"{say} interrupted (SIGINT); temporary files removed", file=sys.stderr)
        return 130
    except (Terminated, *_lightning_sigterm()):
        print(f"{say} terminated (SIGTERM); temporary files removed", file=sys.stderr)
        return 143
    except FloatingPointError as exc:  # the run diverged; the last good checkpoint is kept
        print(f"{say} error: {exc}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        print(f"{say} error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"{say} error: {exc.filename or exc}: {os.strerror(exc.errno)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _service_errors()):
            raise
        print(f"{say} error: MLflow: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(given[0] if given and given[0] in COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    split_overrides(parser, args, extra)
    with redacted_output():  # no credential in a URI reaches the console or a log
        return _run(args.func, args)
