"""The model file and Lightning's checkpoints as sslmae reads them: an older sslmae's model file
still loads; any damaged, foreign or mismatched file is one CheckpointError naming it (the CLI's
one line and exit 2: tests/integration/test_failures.py)."""

import os

import pytest
import torch

from sslmae.config import load_config
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.train.checkpoints import best_weights
from sslmae.train.model_file import CheckpointError, load_model, save_model

LABELS = [f"l{i}" for i in range(8)]


@pytest.fixture
def model_file(tmp_path):
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             "data.img_size=32"])
    m = SimMIMSSLMAE(num_classes=8, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8)
    return save_model(tmp_path / "model.pt", m, cfg, LABELS)


def test_a_model_file_from_before_the_augment_section_and_the_renames_still_loads(model_file):
    payload = torch.load(model_file, weights_only=True)
    payload["config"]["data"].update(crop_scale_min=0.6, flips=True)  # as sslmae 0.1.0 wrote it
    payload["config"]["model"]["size"] = payload["config"]["model"].pop("backbone")  # before the renames
    payload["config"]["model"]["encoder"] = payload["config"]["model"].pop("variant")
    payload["config"]["grid"] = {"ws": [0.3, 0.7], "learnable": True, "out_dir": "runs/grid"}
    torch.save(payload, model_file)
    loaded, cfg, labels, _ = load_model(model_file)
    assert labels == LABELS and cfg.model.backbone == "micro" and cfg.grid.trials == ["w0.3", "w0.7", "learned"]
    assert loaded(torch.zeros(1, 3, 32, 32)).shape == (1, 8)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _damage(path, how):
    payload = torch.load(path, weights_only=True)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif how == "not torch":
        path.write_text("hello")
    elif how == "pickled code":
        torch.save({"x": Evil()}, path)
    elif how == "foreign":
        torch.save({"weights": payload["state_dict"]}, path)
    elif how == "no config":
        payload.pop("config")
        torch.save(payload, path)
    elif how == "bad config":
        payload["config"]["model"]["backbone"] = "enormous"
        torch.save(payload, path)
    elif how == "wrong weights":
        payload["state_dict"] = {k: v[..., :1] if v.ndim else v for k, v in payload["state_dict"].items()}
        torch.save(payload, path)
    elif how == "missing weights":
        payload["state_dict"] = dict(list(payload["state_dict"].items())[:3])
        torch.save(payload, path)


@pytest.mark.parametrize("how, words", [
    ("truncated", "damaged or truncated"), ("not torch", "damaged or truncated"),
    ("pickled code", "refused: not a weights-only sslmae model file"),
    ("foreign", "not an sslmae model file"), ("no config", "damaged sslmae model file (no config)"),
    ("bad config", "config is not valid: model.backbone"), ("wrong weights", "weights do not fit"),
    ("missing weights", "weights do not fit")])
def test_a_damaged_model_file_is_one_error_naming_it(model_file, how, words):
    _damage(model_file, how)
    with pytest.raises(CheckpointError) as err:
        load_model(model_file)
    message = str(err.value)
    assert str(model_file) in message and words in message and "\n" not in message


@pytest.mark.parametrize("content", [b"PK\x03\x04 truncated", b""])
def test_a_damaged_best_weights_checkpoint_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "best.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="best-weights checkpoint .*damaged or truncated"):
        best_weights(path)
    torch.save({"something": 1}, path)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint of sslmae"):
        best_weights(path)
