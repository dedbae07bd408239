"""DDP for real: two torch.distributed processes (gloo on CPU) launched by torchrun, the
launcher a Kubeflow PyTorchJob's torchrun-style environment stands for."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from sslmae.datasets.load import load_dataset
from sslmae.loading.sampling import PairedBatchSampler
from sslmae.split import read_split
from tests.conftest import tiny_overrides


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_shards_reduces_and_writes_once(tmp_path, synth_dir, split_file):
    out = tmp_path / "ddp"
    db = tmp_path / "mlflow.db"
    args = tiny_overrides(tmp_path, synth_dir, split_file) + [
        f"train.out_dir={out}", "train.devices=2", "tracking.enabled=true", f"tracking.uri=sqlite:///{db}",
        "tracking.experiment=ddp"]
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node=2", f"--master_port={_port()}", "-m", "sslmae.cli", "train", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("model: ") == 1  # rank 0 alone reports
    # one checkpoint, one model, one MLflow run
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1 and len(client.get_metric_history(runs[0].info.run_id, "train_loss")) == 2
    # sharded: across both ranks an epoch holds each unlabeled image once (plus padding),
    # not once per rank; the epoch metrics are reduced over both ranks
    data = load_dataset(synth_dir)
    n_unl = int((read_split(split_file, data.ids) == "unlabeled").sum())
    shard0 = list(PairedBatchSampler(np.arange(n_unl), np.arange(1), 8, rank=0, world_size=2))
    shard1 = list(PairedBatchSampler(np.arange(n_unl), np.arange(1), 8, rank=1, world_size=2))
    expected = sum(len(b) for b in shard0 + shard1)
    hist = pd.read_csv(out / "history.csv")
    assert hist["train_images"].tolist() == [expected, expected]
    assert expected < 2 * 2 * n_unl  # a non-sharded run would see every image on every rank
