"""Fault tolerance: epoch checkpoints, resume after SIGKILL, NaN stops, params mismatch."""

import os
import signal
import subprocess
import time

from pathlib import Path

import pandas as pd
import pytest
import torch

from sslmae.config import ConfigError, load_config, updated
from sslmae.train.checkpoints import last_checkpoint
from sslmae.train.run import train
from tests.conftest import SSLMAE, tiny_overrides

EPOCHS = 5


def overrides(tmp, synth_dir, split_file, out):
    return tiny_overrides(tmp, synth_dir, split_file) + [
        f"train.epochs={EPOCHS}", f"train.out_dir={out}", "train.batch_size=4"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_where_uninterrupted_does(tmp_path, synth_dir, split_file):
    ref = train(load_config(None, overrides(tmp_path, synth_dir, split_file, tmp_path / "ref")))
    out = tmp_path / "killed"
    args = [*SSLMAE, "train", *overrides(tmp_path, synth_dir, split_file, out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    ckpt = last_checkpoint(out)
    deadline = time.monotonic() + 300
    while True:  # the checkpoint of epoch 1 (the second) appears: kill at once, epochs 2-4 still to run
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        if ckpt.is_file() and torch.load(ckpt, weights_only=True)["epoch"] >= 1:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved_epoch = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= saved_epoch < EPOCHS - 1  # killed with epochs left: the last checkpoint is not the final one
    resumed = train(load_config(None, overrides(tmp_path, synth_dir, split_file, out)))
    hist = pd.read_csv(resumed.history)
    assert hist["epoch"].tolist() == list(range(EPOCHS))  # same epochs, none twice, none missing
    ref_hist = pd.read_csv(ref.history)
    for col in ("train_loss", "val_macro_auprc"):
        assert hist[col].tolist() == pytest.approx(ref_hist[col].tolist(), rel=1e-4, abs=1e-5), col
    assert resumed.val_metrics["macro_auprc"] == pytest.approx(ref.val_metrics["macro_auprc"], abs=1e-4)


def test_checkpoint_is_weights_only_and_resumes_only_with_the_same_params(tiny_cfg, capsys):
    train(tiny_cfg)
    ckpt = last_checkpoint(tiny_cfg.train.out_dir)
    state = torch.load(ckpt, weights_only=True)  # no arbitrary pickles
    assert state["epoch"] == tiny_cfg.train.epochs - 1 and "sslmae" in state and "optimizer_states" in state
    changed = load_config(None, [f"train.out_dir={tiny_cfg.train.out_dir}", f"data.dir={tiny_cfg.data.dir}",
                                 f"data.split_file={tiny_cfg.data.split_file}", "loss.w=0.9",
                                 "data.img_size=32", "model.backbone=micro", "model.patch_size=4",
                                 "model.mask_patch_size=8", "tracking.enabled=false", "train.epochs=2"])
    strict = updated(changed, {"train.resume": "strict"})
    with pytest.raises(ConfigError, match=r"loss.w: 0.5 -> 0.9"):
        train(strict)
    result = train(changed)  # auto: starts over, saying why
    assert "not resuming" in capsys.readouterr().out
    assert pd.read_csv(result.history)["epoch"].tolist() == [0, 1]
    assert torch.load(result.checkpoint, weights_only=True)["config"]["loss"]["w"] == 0.9


def test_a_fresh_signature_on_the_same_source_resumes_and_nothing_stores_it(tiny_cfg, capsys):
    """Params compare in their masked form (sslmae.redact): a presigned data.source whose
    signature was renewed is the same params, so the run resumes; no file holds a signature."""
    signed = "https://b.s3.amazonaws.com/scenes.zip?X-Amz-Credential=AKIA1&X-Amz-Signature={}"
    train(updated(tiny_cfg, {"data.source": signed.format("aaaa1111")}))
    again = updated(tiny_cfg, {"data.source": signed.format("bbbb2222"),
                               "train.resume": "strict"})  # strict: any params change would be an error
    result = train(again)
    assert "not resuming" not in capsys.readouterr().out
    assert pd.read_csv(result.history)["epoch"].tolist() == [0, 1]
    for path in Path(tiny_cfg.train.out_dir).rglob("*"):
        if path.is_file():
            assert b"aaaa1111" not in path.read_bytes() and b"bbbb2222" not in path.read_bytes(), path
    stored = torch.load(result.checkpoint, weights_only=True)["config"]["data"]["source"]
    assert stored == signed.format("***").replace("AKIA1", "***")


def test_nan_loss_stops_clearly_and_keeps_last_good_checkpoint(tiny_cfg, monkeypatch):
    from sslmae.model.base import SSLMAE

    cfg = updated(tiny_cfg, {"train.epochs": 3})
    real = SSLMAE.training_losses
    calls = {"n": 0}
    steps_per_epoch = 5  # the tiny split: ~5 batches per epoch

    def poisoned(self, *a, **k):
        out = real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] > steps_per_epoch + 2:  # somewhere in the second epoch
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(SSLMAE, "training_losses", poisoned)
    with pytest.raises(FloatingPointError, match="non-finite loss at epoch"):
        train(cfg)
    ckpt = last_checkpoint(cfg.train.out_dir)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 0  # the last good epoch
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_checkpoint_every_n_epochs_and_after_the_last(tiny_cfg, monkeypatch):
    from sslmae.train.checkpoints import AtomicCheckpointIO

    saved = []
    real = AtomicCheckpointIO.save_checkpoint

    def recording(self, checkpoint, path, storage_options=None):
        if str(path).endswith("last.ckpt"):
            saved.append(checkpoint["epoch"])
        real(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording)
    cfg = updated(tiny_cfg, {"train.epochs": 5, "train.checkpoint_every": 2})
    result = train(cfg)
    assert saved == [1, 3, 4]
    leftovers = [p.name for p in last_checkpoint(cfg.train.out_dir).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # every checkpoint written under a temporary name, then renamed
    assert torch.load(last_checkpoint(cfg.train.out_dir), weights_only=True)["epoch"] == 4
    history = pd.read_csv(result.history)
    assert (history["epoch_seconds"] > 0).all()  # wall time per epoch, for throughput figures


@pytest.mark.parametrize("val_every, epochs, validated, best", [(2, 4, [1, 3], {1, 3}), (5, 3, [], {2})])
def test_val_every_n_epochs_selects_among_validated_epochs(tiny_cfg, val_every, epochs, validated, best):
    cfg = updated(tiny_cfg, {"train.epochs": epochs, "train.val_every": val_every})
    result = train(cfg)
    history = pd.read_csv(result.history)
    if validated:
        assert list(history.loc[history["val_macro_auprc"].notna(), "epoch"]) == validated
    else:
        assert "val_macro_auprc" not in history
    assert result.best_epoch in best  # never validated: the last epoch is the model
    assert torch.load(result.checkpoint, weights_only=True)["meta"]["epoch"] == result.best_epoch
