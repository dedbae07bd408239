"""A failed Kubeflow command is one line: a step of a local run that fails (kfp.local's
SubprocessRunner, real DAGs), and the Kubeflow Pipelines API not answering or refusing `submit` and
`schedule` (a closed port; a stand-in API server on 127.0.0.1 answering 401, 403, 400). And a
local run keeps MLflow's state in its run folder, not in the working folder's mlflow.db."""


import logging
import os
import re
import socket
import subprocess

import pytest

from sslmae.kubeflow.errors import StepFailed, run_logged, step_reason
from tests.conftest import REPO, SSLMAE
from tests.support.kfp_fake import FakeKFP, serve

pytestmark = pytest.mark.system
LOG = re.compile(r"\(full log: (\S+\.log)\)")


def _cli(args: list[str], cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """`sslmae ...` in a process of its own, as a user runs it: stderr is what they would see."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "KFP_HOST", "KFP_NAMESPACE")}
    return subprocess.run(SSLMAE + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ a failed step of a local run

def test_the_reason_is_the_steps_own_last_error_line():
    traceback = ("    [KFP Executor 2026-12-06 00:49:36,101 ERROR]: x\n    Traceback (most recent call last):\n"
                 '      File "/x/steps.py", line 50, in run\n        raise SourceError(f"{source}: no such folder")\n'
                 "    sslmae.datasets.problems.SourceError: /does/not/exist: no such folder\n\n"
                 "\x1b[0m00:49:36.537 - ERROR - Task \x1b[96m'ingest'\x1b[0m finished with status FAILURE\n")
    assert step_reason(traceback) == "SourceError: /does/not/exist: no such folder"
    chained = ("Traceback (most recent call last):\n  File \"a\", line 1\nKeyError: 'a'\n\nDuring handling of the "
               "above exception, another exception occurred:\n\nTraceback (most recent call last):\n"
               "  File \"b\", line 2\nValueError: second\n  more of its message\n")
    assert step_reason(chained) == "ValueError: second"
    # ParallelFor iterations print from threads at once: kfp's indentation of each line varies
    mixed = ("Traceback (most recent call last):\n        File \"<frozen runpy>\", line 198, in _run_module_as_main\n"
             "  File \"/x/executor_main.py\", line 109, in <module>\n    executor_main()\n"
             "        File \"/x/executor.py\", line 453, in execute\nresult = self.func(**func_kwargs)\n"
             "             ^^^^^^^^^^^^^^^^^^^^^^^^\n  File \"<string>\", line 3, in work\n"
             "SystemExit: 3\n")
    assert step_reason(mixed) == "SystemExit: 3"
    cli = "sslmae train: error: no such file x.pt"
    assert step_reason(f"loading\n{cli}\nbye\n") == cli
    assert step_reason("one\nlast words\n") == "last words"
    assert step_reason("") == "it printed nothing"


def test_a_failed_iteration_of_a_parallel_for_is_one_line_naming_it_and_its_log(tmp_path):
    """A real kfp.local DAG (SubprocessRunner, the orchestrator run-local uses): one step, then a
    ParallelFor whose second iteration fails; the failure names that task and iteration, its own
    error line and its log, which holds the whole output; every task has its log."""
    import kfp.local
    from kfp import dsl

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def items() -> list:
        print("planning two items")
        return [1, 2]

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def work(item: int):
        print(f"working on item {item}")
        if item == 2:
            raise ValueError(f"item {item} is bad")

    @dsl.pipeline
    def two_items():
        plan = items()
        with dsl.ParallelFor(plan.output) as item:
            work(item=item)

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    logs = tmp_path / "logs"
    with pytest.raises(StepFailed) as failed:
        run_logged(two_items, logs)
    line = str(failed.value)
    assert "\n" not in line
    assert re.fullmatch(r"step work \(for-loop-\d+-iteration-1\) failed: ValueError: item 2 is bad "
                        r"\(full log: \S+\)", line), line
    log = LOG.search(line).group(1)
    assert log.startswith(str(logs)) and os.path.isfile(log)
    text = open(log).read()
    assert "working on item 2" in text and "Traceback (most recent call last)" in text and "FAILURE" in text
    assert "working on item 1" not in text  # the sibling iteration, in a thread beside it, has its own
    assert "planning two items" in (logs / "items.log").read_text()
    (sibling,) = [p for p in logs.glob("for-loop-*-iteration-0/work.log")]
    assert "working on item 1" in sibling.read_text()
    assert not list(logs.rglob("*.partial"))


@pytest.mark.slow
def test_run_local_with_a_missing_source_fails_in_one_line_naming_the_step(tmp_path):
    """The command as a user types it, in a fresh folder: a few lines of stderr at most (kfp's
    warnings and MLflow's lines go to stdout and the step logs), naming the step and its log."""
    done = _cli(["pipeline", "run-local", "--source", "/does/not/exist"], cwd=tmp_path)
    err = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert len(err) <= 3, done.stderr
    assert "Traceback" not in done.stderr and "RuntimeError" not in done.stderr
    line = err[-1]
    assert "step ingest failed" in line and "/does/not/exist: no such folder" in line, line
    log = LOG.search(line).group(1)
    assert os.path.isabs(log) and log == str(tmp_path / "runs" / "kfp-local" / "logs" / "ingest.log")
    text = open(log).read()
    # the whole output of the step: kfp's lines about it, its executor input, its traceback
    assert "Executing task 'ingest'" in text and "Got executor_input" in text and "Traceback" in text
    assert "SourceError: /does/not/exist: no such folder" in text and "FAILURE" in text
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


# ------------------------------------------------------------------ the Kubeflow Pipelines API

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed: connection refused


@pytest.fixture
def kfp_api():
    servers = []

    def start(fake: FakeKFP) -> FakeKFP:
        fake, stop = serve(fake)
        servers.append(stop)
        return fake

    yield start
    for stop in servers:
        stop()


SPEC_ERROR = {"code": 3, "message": "Failed to create a new run: InvalidInputError: pipeline spec is invalid: "
                                   "DAG task 'ingest' references unknown component 'comp-x'", "details": []}


def _refusing(case: str, action: str) -> FakeKFP:
    fake = FakeKFP()
    if case == "401":  # an auth proxy in front of the API server, before any namespace is known
        return fake.refuse(401, "Jwt is missing", prefix="/healthz")
    if case == "403":
        return fake.refuse(403, {"code": 7, "message": "User 'alice' is not authorized in namespace 'team-a'"})
    if action == "submit":  # the run, with its pipeline spec inline
        return fake.refuse(400, SPEC_ERROR, method="POST", prefix="/runs")
    return fake.refuse(400, SPEC_ERROR, method="POST", prefix="/pipelines/upload")  # schedule: the package


def _api_args(action: str, case: str, host: str, tmp_path) -> list[str]:
    args = ["pipeline", action, "--host", host, "--source", "s3://bucket/incoming", "--image", "reg/sslmae:1",
            "--params", str(REPO / "params.yaml")]
    if case == "403":
        args += ["--namespace", "team-a"]
    if action == "schedule":
        args += ["--cron", "0 0 3 * * *", "--out", str(tmp_path / "p.yaml")]
    return args


def _check_api_line(line: str, host: str, case: str) -> None:
    assert line.startswith(f"sslmae pipeline: error: Kubeflow Pipelines API {host}: "), line
    expected = {"unreachable": "does not answer (Connection refused)", "401": "not authenticated (HTTP 401",
                "403": "permission denied (HTTP 403", "400": "rejected the request (HTTP 400"}[case]
    assert expected in line, line
    if case == "401":
        assert "Jwt is missing" in line
    if case == "403":
        assert "User 'alice' is not authorized in namespace 'team-a'" in line and "--namespace" in line
    if case == "400":
        assert SPEC_ERROR["message"] in line


@pytest.mark.parametrize("action,case", [("submit", "unreachable"), ("submit", "401"), ("submit", "403"),
                                         ("submit", "400"), ("schedule", "unreachable"), ("schedule", "400")])
def test_an_api_that_does_not_answer_or_refuses_is_one_line_naming_the_host(action, case, kfp_api, tmp_path,
                                                                          monkeypatch, capsys, caplog):
    from sslmae.cli.main import main

    for var in ("KFP_HOST", "KFP_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    fake = None if case == "unreachable" else kfp_api(_refusing(case, action))
    host = fake.host if fake else f"http://127.0.0.1:{_closed_port()}"
    assert main(_api_args(action, case, host, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    # what would reach stderr through logging (urllib3's retries, kfp's health-check tracebacks)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    _check_api_line(err[0], host, case)
    if case == "401":
        assert len(fake.calls("GET", "/healthz")) == 1  # asked once, not kfp's five times 5 s apart
    if case == "400":
        assert not fake.runs and not fake.recurring and not fake.pipelines


def test_a_refusing_api_is_one_line_in_a_process_of_its_own(kfp_api, tmp_path):
    """As a user sees it: no warning of kfp's client, no log record, no traceback on stderr."""
    fake = kfp_api(_refusing("401", "submit"))
    done = _cli(_api_args("submit", "401", fake.host, tmp_path), cwd=tmp_path, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    _check_api_line(err[0], fake.host, "401")


# Where run-local's MLflow state goes without tracking settings (its run folder, not the working
# folder's store) is checked in tests/system/test_newcomer.py, on the runs the README's commands make.
