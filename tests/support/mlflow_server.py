"""Real MLflow tracking servers for tests (sqlite backend), started once per session under their
own process group and stopped by their pid (sslmae.kubeflow.services.mlflow_server, what
run-containers starts): one with a local artifact store, one whose artifacts go to S3 (the
tests' SeaweedFS), as a team's shared server would keep them."""

from __future__ import annotations

import pytest

from sslmae.kubeflow.services import mlflow_server as serve
from tests.support.s3server import ACCESS_KEY, SECRET_KEY

_SILENT = lambda message: None  # noqa: E731  (a failure to start still raises, with the server's log)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """URI of a running `mlflow server` with a local artifact store."""
    with serve(tmp_path_factory.mktemp("mlflow"), log=_SILENT, ready_s=120) as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_s3_server(tmp_path_factory, s3_server):
    """URI of a running `mlflow server` that keeps artifacts in an S3 bucket (proxied: clients
    need no S3 credentials), and the bucket."""
    bucket = "mlflow-artifacts"
    s3_server.client().create_bucket(Bucket=bucket)
    env = {"MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    with serve(tmp_path_factory.mktemp("mlflow-s3"), log=_SILENT, ready_s=120, artifacts=f"s3://{bucket}/artifacts",
               env=env) as uri:
        yield uri, bucket
