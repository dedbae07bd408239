"""What `sslmae pipeline run-containers` starts on the machine for the run, and stops after it:
the Docker API (podman's `system service`, when no docker engine answers and DOCKER_HOST is not
set) and an MLflow tracking server the containers reach over the host's network (when no
http(s) tracking server is configured). Each runs in its own session and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator


def _stop(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is just this service
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except OSError:
        return ""


def docker_answers(timeout_s: float = 30) -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _ping(base_url: str) -> bool:
    import docker  # optional: only run-containers (kfp's DockerRunner) needs the Docker SDK

    try:
        client = docker.DockerClient(base_url=base_url, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def docker_api(podman_conf: Path | None = None, log=print, ready_s: float = 60) -> Iterator[str]:
    """Yield the engine ('docker' or 'podman') with DOCKER_HOST pointing at a Docker API for the
    block: $DOCKER_HOST as set, else a docker engine that answers, else `podman system service`
    on a socket of its own (with `podman_conf` as CONTAINERS_CONF unless that is set), stopped after."""
    if os.environ.get("DOCKER_HOST"):
        yield "podman" if "podman" in os.environ["DOCKER_HOST"] else "docker"
        return
    if docker_answers():
        yield "docker"
        return
    podman = shutil.which("podman")
    if not podman:
        raise ValueError("run-containers: no container engine: no docker engine answers and podman is not "
                         "installed (`make image` installs it with apt-get)")
    folder = Path(tempfile.mkdtemp(prefix=f"sslmae-podman-{os.getpid()}-"))
    sock, log_file = folder / "podman.sock", folder / "service.log"
    env = dict(os.environ)
    if podman_conf is not None and "CONTAINERS_CONF" not in env:
        env["CONTAINERS_CONF"] = str(podman_conf)
    with open(log_file, "wb") as out:
        proc = subprocess.Popen([podman, "system", "service", "--time=0", f"unix://{sock}"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "CONTAINERS_CONF")}
    try:
        deadline = time.monotonic() + ready_s
        while not (sock.exists() and _ping(f"unix://{sock}")):
            if proc.poll() is not None:
                raise RuntimeError(f"podman system service exited {proc.returncode}: {_tail(log_file)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"podman system service: no Docker API on {sock} after {ready_s:.0f} s")
            time.sleep(0.3)
        log(f"podman system service (pid {proc.pid}) serves the Docker API on {sock}")
        os.environ["DOCKER_HOST"] = f"unix://{sock}"
        if "CONTAINERS_CONF" in env:
            os.environ["CONTAINERS_CONF"] = env["CONTAINERS_CONF"]
        yield "podman"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(proc)
        log(f"podman system service (pid {proc.pid}) stopped")
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: str | Path, log=print, ready_s: float = 180, artifacts: str | None = None,
                  env: dict | None = None) -> Iterator[str]:
    """Yield the URI of an `mlflow server` on 127.0.0.1 (the containers share the host's network)
    with its runs and registry in `folder/mlflow.db` and artifacts in `artifacts` (default
    `folder/artifacts`; an s3:// URI is proxied, with credentials from `env`), kept after the
    block; the server is stopped by its pid."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "mlflow"
    exe = str(exe) if exe.exists() else (shutil.which("mlflow") or "")
    if not exe:
        raise ValueError("run-containers: the mlflow command is not installed (pip install -e '.[pipeline]')")
    port = free_port()
    cmd = [exe, "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
           artifacts or str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **(env or {}))
    log_file = folder / "server.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {proc.returncode}: {_tail(log_file)}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready on {uri} after {ready_s:.0f} s: {_tail(log_file)}")
            time.sleep(0.5)
        log(f"mlflow server (pid {proc.pid}) on {uri}, store {folder / 'mlflow.db'}")
        yield uri
    finally:
        _stop(proc)
        log(f"mlflow server (pid {proc.pid}) stopped")
