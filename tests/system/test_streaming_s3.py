"""Shards on a real S3 server (SeaweedFS): ingest writes them there shard by shard, and training,
evaluation and prediction stream them through a cache smaller than the dataset, giving exactly the
weights and scores that the same shards give from a local folder; two DDP processes stream their
own shards. The Kubeflow steps with a store: no step downloads the dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sslmae.cli.main import main
from sslmae.datasets.ingest import ingest
from sslmae.datasets.load import load_dataset
from sslmae.datasets.store import Store
from sslmae.split import split_dataset
from tests.conftest import tiny_overrides


def quiet(*a, **k):
    pass


@pytest.fixture
def s3(s3, monkeypatch):
    """The test bucket, reached as users reach theirs: the endpoint in AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    return s3


def cache_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.tar") if p.is_file())


@pytest.mark.slow
def test_training_evaluation_and_prediction_stream_shards_from_s3(s3, synth_dir, tmp_path):
    uri = f"s3://{s3.bucket}/datasets/synth"
    ingest(str(synth_dir), uri, format="shards", shard_bytes=96 * 1024, log=quiet)
    names = Store(uri).keys()
    assert "manifest.parquet" in names and sum(n.startswith("shards/") for n in names) >= 4
    local = ingest(str(synth_dir), tmp_path / "local", format="shards", shard_bytes=96 * 1024, log=quiet).out
    remote = load_dataset(uri)
    assert remote.ids == load_dataset(local).ids and remote.root == uri
    split = tmp_path / "split.csv"
    assert split_dataset(uri, split, fraction=0.3, seed=4).equals(split_dataset(local, tmp_path / "s2.csv",
                                                                                 fraction=0.3, seed=4))
    shard = max((local / "shards").glob("*.tar"), key=lambda p: p.stat().st_size).stat().st_size
    bound = int(2.5 * shard)  # room for two shards and a bit: far less than the dataset
    assert bound < cache_bytes(local)
    runs = {}
    for name, data in (("local", local), ("s3", uri)):
        over = tiny_overrides(tmp_path / name, data, split) + ["data.num_workers=2",
                                                               f"data.stream_cache_bytes={bound}"]
        assert main(["train", *over]) == 0
        assert main(["evaluate", *over]) == 0
        assert main(["predict", "--model", str(tmp_path / name / "train" / "model.pt"), "--input", str(data),
                     "--out", str(tmp_path / f"{name}.csv"), *over]) == 0
        runs[name] = over
    assert cache_bytes(tmp_path / "s3" / "cache") <= bound  # the bound held, whatever the dataset's size
    assert not (tmp_path / "local" / "cache").exists() or cache_bytes(tmp_path / "local" / "cache") == 0
    a = torch.load(tmp_path / "local" / "train" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "s3" / "train" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same images in the same order
    ma, mb = (json.loads((tmp_path / n / "eval" / "metrics.json").read_text()) for n in ("local", "s3"))
    assert ma == mb
    pa, pb = pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "s3.csv")
    assert pa.equals(pb) and pa["error"].isna().all()


def test_a_prefix_that_holds_other_files_is_refused_and_an_earlier_ingest_is_replaced(s3, synth_dir, capsys):
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="foreign/readme.txt", Body=b"mine")
    assert main(["ingest", str(synth_dir), "--out", f"s3://{s3.bucket}/foreign", "--format", "shards"]) == 2
    assert "refusing to write there" in capsys.readouterr().err
    uri = f"s3://{s3.bucket}/ds"
    assert main(["ingest", str(synth_dir), "--out", uri, "--format", "shards", "--shard-bytes", "1048576"]) == 0
    first = sorted(Store(uri).keys())
    assert main(["ingest", str(synth_dir), "--out", uri, "--format", "shards", "--shard-bytes", "2097152"]) == 0
    assert sorted(Store(uri).keys()) == first  # replaced, nothing of the earlier one left over
    assert main(["ingest", str(synth_dir), "--out", f"s3://{s3.bucket}/files"]) == 2
    assert "only the shard format is written to S3" in capsys.readouterr().err


@pytest.mark.slow
def test_two_ddp_processes_stream_their_own_shards(synth_dir, split_file, tmp_path):
    shards = ingest(str(synth_dir), tmp_path / "shards", format="shards", shard_bytes=64 * 1024, log=quiet).out
    torchrun = Path(sys.executable).parent / "torchrun"
    over = tiny_overrides(tmp_path, shards, split_file) + ["train.devices=2", "train.strategy=ddp",
                                                           "train.accelerator=cpu"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29533", "-m", "sslmae.cli", "train",
                           *over], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = pd.read_csv(tmp_path / "train" / "history.csv")
    unlabeled = (pd.read_csv(split_file)["subset"] == "unlabeled").sum()
    # both ranks together: every unlabeled image once per epoch (padding repeats at most a batch per rank)
    assert (history["train_images"] >= 2 * unlabeled).all() and (history["train_images"] <= 2 * unlabeled + 32).all()
