"""Credentials in URI-valued settings are used, and never stored or shown: a presigned URL of the
dataset's archive (real SigV4 query parameters, made by boto3 against the tests' S3 server) and a
tracking URI with a user and password, through ingest, split, train, evaluate, report, register and
predict as separate processes against the tests' MLflow server (artifacts in S3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch
from mlflow import MlflowClient

from tests.conftest import SSLMAE, tiny_overrides

PASSWORD = "s3cretPassw0rd"


def _cli(args: list[str], cwd: Path, log: list[str]) -> None:
    proc = subprocess.run(SSLMAE + args, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    log.extend([proc.stdout, proc.stderr])
    assert proc.returncode == 0, f"sslmae {args[0]}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture
def signed_source(tmp_path, synth_dir, s3_server, mlflow_s3_server):
    """A presigned GET URL of a zip of the dataset; the zip exists only in the bucket."""
    bucket = mlflow_s3_server[1]
    archive = shutil.make_archive(str(tmp_path / "upload" / "scenes"), "zip", synth_dir.parent, synth_dir.name)
    client = s3_server.client(signature_version="s3v4")  # SigV4 query parameters, as AWS signs today
    client.upload_file(archive, bucket, f"sources/{tmp_path.name}/scenes.zip")
    shutil.rmtree(tmp_path / "upload")
    url = client.generate_presigned_url("get_object", ExpiresIn=3600,
                                        Params={"Bucket": bucket, "Key": f"sources/{tmp_path.name}/scenes.zip"})
    query = parse_qs(urlsplit(url).query)
    assert {"X-Amz-Signature", "X-Amz-Credential"} <= set(query)
    return url, query["X-Amz-Signature"][0]


@pytest.mark.slow
def test_credentials_in_uris_are_used_but_never_stored_or_shown(tmp_path, signed_source, mlflow_s3_server,
                                                                s3_server, tmp_path_factory):
    url, signature = signed_source
    server = urlsplit(mlflow_s3_server[0])
    tracking = f"http://alice:{PASSWORD}@{server.netloc}"
    work = tmp_path / "work"
    work.mkdir()
    log: list[str] = []
    ds, split = work / "ds", work / "split.csv"
    secret = [f"data.source={url}", f"tracking.uri={tracking}"]
    _cli(["ingest", "--out", str(ds), *secret], work, log)  # the archive is read through the signed URL
    assert json.loads((ds / "ingest_report.json").read_text())["n_images"] == 96
    _cli(["split", str(ds), "--out", str(split), "--fraction", "0.3"], work, log)
    model_name, experiment = f"m-{tmp_path.name}", f"exp-{tmp_path.name}"
    over = [o for o in tiny_overrides(work, ds, split) if not o.startswith("tracking.")] + secret + [
        "tracking.enabled=true", f"tracking.experiment={experiment}", f"tracking.registered_model={model_name}"]
    _cli(["train", *over], work, log)
    _cli(["evaluate", "--model", str(work / "train" / "model.pt"), *over], work, log)
    _cli(["report", "--run", str(work / "train"), "--eval", str(work / "eval"), "--out", str(work / "report.html"),
          *over], work, log)
    _cli(["register", "--model", str(work / "train" / "model.pt"), "--metrics", str(work / "eval" / "metrics.json"),
          "--out", str(work / "registered.json"), *over], work, log)
    _cli(["predict", "--model", f"models:/{model_name}@challenger", "--input", url, "--out", str(work / "pred.csv"),
          *over], work, log)
    _cli(["config", *over], work, log)

    # the values were used: the run and the version are on the server the URI names
    client = MlflowClient(tracking_uri=mlflow_s3_server[0])
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert {r.data.tags["sslmae.kind"] for r in runs} >= {"train", "evaluate"}
    assert client.get_model_version_by_alias(model_name, "challenger")
    assert len((work / "pred.csv").read_text().splitlines()) == 97

    # and shown masked where they are shown
    train_run = next(r for r in runs if r.data.tags["sslmae.kind"] == "train")
    assert train_run.data.params["data.source"].endswith("X-Amz-Signature=***")
    assert train_run.data.params["tracking.uri"] == f"http://***@{server.netloc}"
    config = torch.load(work / "train" / "model.pt", weights_only=True)["config"]
    assert config["tracking"]["uri"] == f"http://***@{server.netloc}"

    secrets = [PASSWORD.encode(), signature.encode()]
    found = []
    for path in sorted(work.rglob("*")):  # every file the commands wrote: model files, checkpoints, reports
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s!r}" for s in secrets if s in data]
    stores = list(tmp_path_factory.getbasetemp().glob("mlflow-s3*/mlflow.db*"))
    assert stores, "the MLflow server's store"
    for path in stores:
        data = path.read_bytes()
        found += [f"{path}: {s!r}" for s in secrets if s in data]
    s3 = s3_server.client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=mlflow_s3_server[1], Prefix="artifacts/"):
        for obj in page.get("Contents", []):
            data = s3.get_object(Bucket=mlflow_s3_server[1], Key=obj["Key"])["Body"].read()
            found += [f"s3 {obj['Key']}: {s!r}" for s in secrets if s in data]
    shown = "\n".join(log)
    found += [f"console: {s!r}" for s in secrets if s.decode() in shown]
    assert found == []
    assert "X-Amz-Signature=***" in shown or "***@" in shown  # the commands did name them, masked
