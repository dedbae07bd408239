"""The shard format end to end on local shards: ingest writes them (and leaves nothing when
interrupted), split and evaluate and predict read them as they read a folder dataset (the same
rows, the same scores), a streamed training learns, and a trial killed mid-epoch resumes at the
batch it stopped on and ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from sslmae.cli.main import main
from sslmae.config import load_config
from sslmae.datasets.ingest import ingest
from sslmae.datasets.load import load_dataset
from sslmae.evaluate import evaluate_as_configured
from sslmae.split import split_dataset
from sslmae.train.checkpoints import last_checkpoint
from sslmae.train.run import train
from tests.conftest import LEARNING, SSLMAE, chance_auprc, tiny_overrides


def quiet(*a, **k):
    pass


@pytest.fixture(scope="module")
def both(synth_dir, tmp_path_factory):
    """The session's synthetic data ingested in both formats (small shards: several of them)."""
    work = tmp_path_factory.mktemp("formats")
    files = ingest(str(synth_dir), work / "files", log=quiet).out
    shards = ingest(str(synth_dir), work / "shards", format="shards", shard_bytes=64 * 1024, log=quiet).out
    return files, shards


def test_a_shard_dataset_splits_and_reads_as_its_folder_does(both, tmp_path):
    files, shards = both
    a, b = load_dataset(files), load_dataset(shards)
    assert a.ids == b.ids and (a.labels == b.labels).all() and (a.groups == b.groups).all()
    assert b.paths == [] and len(b.shards.names) > 3 and b.shards.size.sum() == sum(p.stat().st_size for p in a.paths)
    s1 = split_dataset(files, tmp_path / "a.csv", fraction=0.3, seed=2)
    s2 = split_dataset(shards, tmp_path / "b.csv", fraction=0.3, seed=2)
    assert s1.equals(s2)


def test_evaluate_and_predict_score_a_shard_dataset_as_its_folder(both, tmp_path, split_file, tiny_run):
    files, shards = both
    over = tiny_overrides(tmp_path, files, split_file)
    model = tiny_run / "model.pt"  # a tiny model (the session's): both formats are scored by the same one
    metrics = {}
    for name, ds in (("files", files), ("shards", shards)):
        cfg = load_config(None, tiny_overrides(tmp_path, ds, split_file))
        metrics[name] = evaluate_as_configured(cfg, model, tmp_path / f"ev_{name}", tracked=False)
        assert main(["predict", "--model", str(model), "--input", str(ds), "--out", str(tmp_path / f"{name}.csv"),
                     *over]) == 0
    assert metrics["files"] == metrics["shards"]
    a, b = pd.read_csv(tmp_path / "files.csv"), pd.read_csv(tmp_path / "shards.csv")
    assert list(a["image"]) == load_dataset(files).ids and a.equals(b)


@pytest.mark.slow
def test_a_streamed_training_learns(learnable, tmp_path):
    data, split = learnable
    shards = ingest(str(data), tmp_path / "shards", format="shards", shard_bytes=256 * 1024, log=quiet).out
    cfg = load_config(None, tiny_overrides(tmp_path, shards, split) + LEARNING + ["data.num_workers=2"])
    result = train(cfg)
    metrics = evaluate_as_configured(cfg, result.checkpoint, tmp_path / "ev", tracked=False)
    assert metrics["macro_auprc"] > chance_auprc(load_dataset(data).labels) + 0.15
    history = pd.read_csv(result.history)
    per_epoch = (pd.read_csv(split)["subset"] == "unlabeled").sum()
    assert (history["train_images"] >= 2 * per_epoch).all()  # every unlabeled image once, and a partner each


def test_an_interrupted_shard_ingest_leaves_nothing(synth_dir, tmp_path, monkeypatch):
    from sslmae.datasets import ingest as module

    real, seen = module.decode, {"n": 0}

    def failing(*args, **kw):
        seen["n"] += 1
        if seen["n"] == 60:
            raise KeyboardInterrupt("killed mid-ingest")
        return real(*args, **kw)

    monkeypatch.setattr(module, "decode", failing)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(synth_dir), tmp_path / "out" / "ds", format="shards", shard_bytes=64 * 1024, log=quiet)
    assert os.listdir(tmp_path / "out") == []


def _mid_epoch(ckpt: Path, per_epoch: int) -> bool:
    try:
        state = torch.load(ckpt, weights_only=True)
    except Exception:  # being replaced: not yet
        return False
    return state["global_step"] % per_epoch not in (0,) and state["global_step"] > per_epoch


@pytest.mark.slow
def test_a_streamed_trial_killed_mid_epoch_resumes_at_that_batch(both, split_file, tmp_path):
    _, shards = both
    over = tiny_overrides(tmp_path, shards, split_file) + [
        "train.epochs=4", "train.batch_size=4", "train.checkpoint_every_steps=3", "data.num_workers=2"]
    # every run in a process of its own, as the kill needs: bitwise equality needs the same thread
    # count, which earlier tests may have changed in this one
    subprocess.run([*SSLMAE, "train", *over, f"train.out_dir={tmp_path / 'ref'}"], check=True, capture_output=True)
    per_epoch = json.loads((tmp_path / "ref" / "metrics.json").read_text())["epochs_run"]
    per_epoch = int(torch.load(last_checkpoint(tmp_path / "ref"), weights_only=True)["global_step"]) // per_epoch
    out = tmp_path / "killed"
    proc = subprocess.Popen([*SSLMAE, "train", *over, f"train.out_dir={out}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    ckpt, deadline = last_checkpoint(out), time.monotonic() + 300
    while True:  # stop the run, and kill it only while its last checkpoint is a mid-epoch one
        while not (ckpt.is_file() and _mid_epoch(ckpt, per_epoch)):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGSTOP)
        if _mid_epoch(ckpt, per_epoch):  # no newer checkpoint landed meanwhile (writes are atomic renames)
            break
        os.killpg(proc.pid, signal.SIGCONT)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(ckpt, weights_only=True)
    step = state["global_step"]
    assert step % per_epoch and state["SSLDataModule"]["train_loader"]["consumed"] == \
        step % per_epoch  # killed mid-epoch, the loader's position saved with the weights
    resumed = subprocess.run([*SSLMAE, "train", *over, f"train.out_dir={out}"], capture_output=True, text=True)
    assert resumed.returncode == 0 and "Restored all states" in resumed.stderr, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same batches, masks and augmentation: the same weights
    ha, hb = pd.read_csv(tmp_path / "ref" / "history.csv"), pd.read_csv(out / "history.csv")
    for col in ("train_loss", "train_images", "val_macro_auprc"):
        assert hb[col].tolist() == pytest.approx(ha[col].tolist(), rel=1e-6), col
