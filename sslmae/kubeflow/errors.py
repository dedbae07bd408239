"""One line per failure of a Kubeflow command, as every `sslmae` command fails (sslmae.cli.main):
a failed step of a local run (`sslmae pipeline run-local | run-containers`) and an error answer of
the Kubeflow Pipelines API (`submit`, `schedule`). Both become a ValueError whose message is that
line, so the CLI's one route for errors the user can act on prints it and exits 2.

A local run goes through kfp.local, which streams every task's output to stdout and, when a task
fails, raises a RuntimeError that names only the task ("Inner task failed: 'ingest'"), after
thousands of lines of logs. `step_logs` keeps each task's whole output in a file of its own under
the run folder and notes each failed task with its own last error line, so the run can end with
one line naming the step, why it failed and where its log is.

Nothing is imported from kfp until a function runs: sslmae installs without the `pipeline` extra.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from sslmae.redact import redact

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KFP_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} - [A-Z]+ - ")  # kfp.local's own lines, not the task's
CLI_LINE = re.compile(r"^sslmae [\w-]+: \S")  # what an sslmae command prints when it fails
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)(:\s.*|:?)$")
EXCEPTION_NAME = re.compile(r"(Error|Exception|Exit|Interrupt|Warning|Failure)$")
ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
MAX_REASON = 400


class StepFailed(ValueError):
    """A step of a local pipeline run failed; the message is the one line the user sees."""


class KubeflowAPIError(ValueError):
    """The Kubeflow Pipelines API could not be reached or refused a request; the message names the host."""


# ------------------------------------------------------------------ a failed step of a local run

@dataclass(frozen=True)
class Failure:
    step: str  # the kfp task name, with the loop iteration it ran in: "train-trial (for-loop-2-iteration-1)"
    reason: str  # the step's own last error line
    log: Path  # its whole output

    def line(self) -> str:
        return f"step {self.step} failed: {self.reason} (full log: {self.log})"


def _exception_line(lines: list[str]) -> str:
    """The exception line of a traceback's body (the lines after its header), found by content:
    kfp.local indents a task's printed lines, but not reliably while ParallelFor iterations print
    from threads at once, so indentation cannot tell frames from the exception. A `File "..."`
    line starts a frame, the next line is its source (unless it looks like an exception: a frame
    may have no source), caret lines mark it; the first other line shaped like an exception is it."""
    after_frame = False
    for text in (x.strip() for x in lines):
        if text.startswith('File "'):
            after_frame = True
            continue
        if not text.strip("^~ "):
            continue
        found = EXCEPTION_LINE.match(text)
        if found and (not after_frame or EXCEPTION_NAME.search(found.group(1))):
            return found.group(1) + found.group(2)
        after_frame = False
    return ""


def step_reason(output: str) -> str:
    """A step's own last error line in its output: the exception that ended its Python process
    (without the module path of the exception's class), else its last `sslmae ...: message`
    line, else its last line."""
    lines = [ANSI.sub("", x).rstrip() for x in output.splitlines()]
    lines = [x for x in lines if x.strip() and not KFP_LOG_LINE.match(x.strip())]
    starts = [i for i, x in enumerate(lines) if x.strip() == "Traceback (most recent call last):"]
    reason = _exception_line(lines[starts[-1] + 1:]) if starts else ""
    if not reason:
        reason = next((x.strip() for x in reversed(lines) if CLI_LINE.match(x.strip())), "")
    if not reason:
        reason = lines[-1].strip() if lines else "it printed nothing"
    reason = " ".join(reason.split())
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 3] + "..."


class _PerThreadCopy:
    """sys.stdout during a local run: every write goes on to the real stdout, and also to the log of
    the task whose thread writes it (kfp.local runs the iterations of a ParallelFor in threads, all
    printing to the one sys.stdout)."""

    def __init__(self, stream):
        self._stream = stream
        self._local = threading.local()

    def copy_to(self, sink) -> None:
        self._local.sink = sink

    def write(self, text: str) -> int:
        sink = getattr(self._local, "sink", None)
        if sink is not None:
            sink.write(redact(ANSI.sub("", text)))  # kfp colours task names for a terminal
            sink.flush()
        return self._stream.write(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def _where(pipeline_resource_name: str) -> str:
    """'sslmae-training-<time>/for-loop-2-iteration-1' -> 'for-loop-2-iteration-1' (top level: '')."""
    return pipeline_resource_name.partition("/")[2]


def _logged(execute: Callable, out: _PerThreadCopy, log_dir: Path, failures: list[Failure]) -> Callable:
    """kfp.local's execute_single_task (one task, retries included) with the task's output also
    written to log_dir/[<loop iteration>/]<task>.log, and a failure noted."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def execute_single_task(*args, **kwargs):
        given = signature.bind_partial(*args, **kwargs).arguments
        task, where = given["task_name"], _where(given.get("pipeline_resource_name", ""))
        step = f"{task} ({where})" if where else task
        path = (log_dir / where / f"{task}.log").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")  # the log while the task runs
        sink = open(partial, "w", encoding="utf-8", errors="replace")
        try:
            out.copy_to(sink)
            result = execute(*args, **kwargs)
        except Exception as exc:  # kfp itself failed, not the step's process
            failures.append(Failure(step, " ".join(f"{type(exc).__name__}: {exc}".split()), path))
            raise
        finally:
            out.copy_to(None)
            sink.close()
            os.replace(partial, path)  # also when interrupted: the log so far
        outputs, status = result
        if getattr(status, "name", "") == "FAILURE":
            failures.append(Failure(step, step_reason(path.read_text(encoding="utf-8", errors="replace")), path))
        return outputs, status

    return execute_single_task


def _warning_on_stdout(message, category, filename, lineno, file=None, line=None) -> None:
    print(warnings.formatwarning(message, category, filename, lineno, line).rstrip())


@contextlib.contextmanager
def step_logs(log_dir: str | Path) -> Iterator[list[Failure]]:
    """For the duration: each task kfp.local runs has its whole output (kfp's lines about it, the
    step's own lines, its traceback) in `log_dir`/[<loop iteration>/]<task>.log, written while it
    runs as <task>.log.partial and renamed when it ends; Python warnings (kfp's about settings a
    local runner ignores) and log records without a handler go to stdout and that log instead of
    stderr. Yields the list of failed tasks, in the order they failed (retries done).

    The hook is kfp.local's `task_executor.execute_single_task`, which both of its DAG
    orchestrators call through the module for every container task: it knows the task's name and
    the loop iteration it runs in, runs the task's retries, and is the same for the
    SubprocessRunner and the DockerRunner (both print the task's output with `print`)."""
    from kfp.local.orchestrator import task_executor  # both of kfp.local's DAG orchestrators call it

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    failures: list[Failure] = []
    out = _PerThreadCopy(sys.stdout)
    original = task_executor.execute_single_task
    root = logging.getLogger()
    handler = logging.StreamHandler(out)
    saved = sys.stdout
    with warnings.catch_warnings():
        warnings.showwarning = _warning_on_stdout
        sys.stdout = out
        root.addHandler(handler)
        task_executor.execute_single_task = _logged(original, out, log_dir, failures)
        try:
            yield failures
        finally:
            task_executor.execute_single_task = original
            root.removeHandler(handler)
            sys.stdout = saved


def run_logged(run: Callable[[], object], log_dir: str | Path) -> None:
    """`run()` (a kfp.local pipeline call) under `step_logs`; a failed step is a StepFailed whose
    message names the step, its own last error line and its log file (the first to fail, when
    several did), instead of kfp's RuntimeError."""
    with step_logs(log_dir) as failures:
        try:
            run()
        except RuntimeError:
            if not failures:
                raise
            raise StepFailed(failures[0].line()) from None
    if failures:  # kfp.local.init(raise_on_error=False) logs a failure instead of raising it
        raise StepFailed(failures[0].line())


# ------------------------------------------------------------------ the Kubeflow Pipelines API

def _answer_message(body) -> str:
    """The message of an error answer: KFP's JSON status (`message`, `error_message`, `error`), or
    the body's text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = (body or "").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error_message") or data.get("error") or text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def api_problem(exc: BaseException) -> str | None:
    """What is wrong, in a few words, when `exc` is the Kubeflow Pipelines API not answering or
    answering a request with a client error (4xx); None otherwise. Server errors (5xx) are left
    as they are: kfp's own retries and message stand."""
    try:
        from kfp_server_api.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # without the `pipeline` extra nothing here could have raised them
        return None
    if isinstance(exc, ApiException):
        status = exc.status or 0
        said = _answer_message(exc.body)
        said = f": {said}" if said else ""
        if status == 401:
            return (f"not authenticated (HTTP 401 {exc.reason}){said}; log in to Kubeflow (a session cookie or "
                    "token for kfp.Client) or reach the API through a port-forward")
        if status == 403:
            return (f"permission denied (HTTP 403 {exc.reason}){said}; check --namespace (your profile namespace) "
                    "and that your account may create pipelines and runs there")
        if status == 400:
            return f"rejected the request (HTTP 400 {exc.reason}){said}"
        if 400 <= status < 500:
            return f"HTTP {status} {exc.reason}{said}"
        return None
    if isinstance(exc, (Urllib3Error, ConnectionError)):
        found = ERRNO.search(str(exc))
        why = found.group(1).strip() if found else " ".join(str(getattr(exc, "reason", None) or exc).split())
        return (f"does not answer ({why}); check --host (or KFP_HOST) and that the API server, or your "
                "port-forward to it (kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80), is running")
    return None


@contextlib.contextmanager
def api_errors(host: str | None) -> Iterator[None]:
    """Within: the Kubeflow Pipelines API at `host` not answering, or refusing a request (401,
    403, 400 with the API server's own message, ...), is one KubeflowAPIError naming the host.
    urllib3's "Retrying ..." warnings are held back meanwhile: that line says how it ended (on its
    connection pool's logger: kfp's client sets the level of urllib3's own when it starts)."""
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    level = urllib3_log.level
    urllib3_log.setLevel(logging.ERROR)
    try:
        yield
    except Exception as exc:
        problem = api_problem(exc)
        if problem is None:
            raise
        raise KubeflowAPIError(f"Kubeflow Pipelines API {redact(host or '?')}: {problem}") from None
    finally:
        urllib3_log.setLevel(level)
