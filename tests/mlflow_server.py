"""Real MLflow tracking servers for tests (sqlite backend), started once per session under their
own process group and stopped by their pid: one with a local artifact store, one whose artifacts
go to S3 (the tests' SeaweedFS), as a team's shared server would keep them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.s3server import ACCESS_KEY, SECRET_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(root: Path, artifacts: str, env: dict):
    """Start `mlflow server`, wait for /health, yield its URI, stop it by its process group."""
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **env)
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not ready in 120 s:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """URI of a running `mlflow server` with a local artifact store."""
    root = tmp_path_factory.mktemp("mlflow")
    yield from _serve(root, str(root / "artifacts"), {})


@pytest.fixture(scope="session")
def mlflow_s3_server(tmp_path_factory, s3_server):
    """URI of a running `mlflow server` that keeps artifacts in an S3 bucket (proxied: clients
    need no S3 credentials), and the bucket."""
    bucket = "mlflow-artifacts"
    s3_server.client().create_bucket(Bucket=bucket)
    root = tmp_path_factory.mktemp("mlflow-s3")
    env = {"MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    for uri in _serve(root, f"s3://{bucket}/artifacts", env):
        yield uri, bucket
