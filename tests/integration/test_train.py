"""Training on CPU: the whole CLI flow learns far above chance, every mode and variant learns, a run
is deterministic, early stopping and model selection do what they say."""

import json

import pandas as pd
import pytest
import torch

from sslmae.cli.main import main
from sslmae.config import load_config, updated
from sslmae.datasets.load import load_dataset
from sslmae.evaluate import evaluate_as_configured
from sslmae.train.model_file import load_model
from sslmae.train.run import train
from tests.conftest import LEARNING, chance_auprc, tiny_overrides


def run_cli(*args):
    assert main([str(a) for a in args]) == 0


@pytest.mark.slow
def test_pipeline_learns_far_above_chance(tmp_path):
    data, split = tmp_path / "data", tmp_path / "split.csv"
    run_cli("synth", "--out", data, "--n", 320, "--size", 32, "--seed", 0)
    run_cli("split", data, "--out", split, "--fraction", 0.3, "--seed", 0)
    overrides = [
        f"data.dir={data}", f"data.split_file={split}", "data.img_size=32",
        "model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
        *LEARNING, "train.progress_bar=false", "train.accelerator=cpu",
        f"train.out_dir={tmp_path / 'train'}", f"evaluate.out_dir={tmp_path / 'eval'}",
    ]
    run_cli("train", *overrides)
    run_cli("evaluate", *overrides)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    chance = chance_auprc(load_dataset(data).labels)  # AUPRC of a random ranking = prevalence
    assert metrics["subset"] == "test" and metrics["n_samples"] > 40
    assert metrics["macro_auprc"] > chance + 0.2, (metrics["macro_auprc"], chance)
    table = (tmp_path / "eval" / "per_class.csv").read_text().splitlines()
    assert table[0] == "label,support,ap,precision,recall,f1" and len(table) == 9
    history = (tmp_path / "train" / "history.csv").read_text().splitlines()
    assert len(history) == 13 and history[0].startswith("epoch,train_loss,train_l_rec,train_l_cls,w,lr")
    # the exported model loads without pickled code and predicts
    payload = torch.load(tmp_path / "train" / "model.pt", weights_only=True)
    assert payload["format"] == "sslmae-model-v1"
    model, cfg, labels, meta = load_model(tmp_path / "train" / "model.pt")
    assert labels[0] == "buildings" and model(torch.zeros(2, 3, 32, 32)).shape == (2, 8)
    # this run is test_every_mode_and_variant_learns's semi_supervised case (the same data as `learnable`:
    # synth n=320 size=32 seed=0, split fraction=0.3 seed=0; the same LEARNING config): its checks, here
    assert metrics["n_samples"] >= 60 and metrics["macro_auprc"] > chance + 0.15, (metrics["macro_auprc"], chance)
    assert set(pd.read_csv(tmp_path / "train" / "history.csv")["w"]) == {0.5}
    assert cfg.loss.mode == "semi_supervised" and cfg.model.variant == "simmim" and model.decoder is not None


def test_train_is_deterministic_on_cpu(tiny_cfg, tmp_path):
    a = train(tiny_cfg)
    cfg_b = updated(tiny_cfg, {"train.out_dir": str(tmp_path / "b")})
    b = train(cfg_b)
    sa = torch.load(a.checkpoint, weights_only=True)["state_dict"]
    sb = torch.load(b.checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.val_metrics == b.val_metrics and a.w_per_epoch == b.w_per_epoch == [0.5, 0.5]


@pytest.mark.slow
@pytest.mark.parametrize("name, extra", [
    # semi_supervised (no extra): the run of test_pipeline_learns_far_above_chance, checked there
    ("supervised, learned w", ["loss.mode=supervised", "loss.learn_w=true", "loss.w_lr=0.5"]),
    ("supervised_baseline", ["loss.mode=supervised_baseline"]),
    ("visible_only", ["model.variant=visible_only", "model.decoder_dim=16", "model.decoder_depth=1"]),
])
def test_every_mode_and_variant_learns(learnable, tmp_path, name, extra):
    """Each mode, and the visible_only extension, beats the chance level on test images by a margin."""
    data, split = learnable
    cfg = load_config(None, tiny_overrides(tmp_path, data, split) + LEARNING + extra)
    result = train(cfg)
    metrics = evaluate_as_configured(cfg, result.checkpoint, tmp_path / "ev", tracked=False)
    chance = chance_auprc(load_dataset(data).labels)
    assert metrics["n_samples"] >= 60 and metrics["macro_auprc"] > chance + 0.15, (metrics["macro_auprc"], chance)
    ws = result.w_per_epoch
    if cfg.loss.learn_w:
        assert all(0 < w < 1 for w in ws) and ws[-1] != ws[0]  # w is learned, and stays in (0, 1)
    elif cfg.loss.mode == "supervised_baseline":
        assert set(ws) == {1.0}  # the baseline is L_cls alone
    else:
        assert set(ws) == {0.5}
    model, saved, _, _ = load_model(result.checkpoint)
    assert saved.model.variant == cfg.model.variant and (model.decoder is None) == (name == "supervised_baseline")


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, synth_dir):
    assert main(["train", "model.mask_ratio=1.5"]) == 2
    err = capsys.readouterr().err
    assert "model.mask_ratio" in err and "Traceback" not in err
    assert main(["split", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "labels.csv: not found" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    assert main(["evaluate", "--model", str(tmp_path / "none.pt")]) == 2
    assert "model file not found" in capsys.readouterr().err




def test_early_stopping_on_val_loss_and_select_last(tiny_cfg):
    # lr ~ 0: the validation loss cannot improve, so patience 1 stops after the second validation
    cfg = updated(tiny_cfg, {"loss.mode": "supervised_baseline", "train.lr": 1e-12, "train.epochs": 6,
                             "train.early_stop_patience": 1, "train.select": "last", "model.drop_path": 0.0})
    result = train(cfg)
    history = pd.read_csv(result.history)
    assert history["epoch"].tolist() == [0, 1] and "val_loss" in history
    assert result.best_epoch == 1 and torch.load(result.checkpoint, weights_only=True)["meta"]["epoch"] == 1
    assert torch.load(cfg.train.out_dir + "/checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    longer = train(updated(cfg, {"train.min_epochs": 4, "train.out_dir": cfg.train.out_dir + "-min"}))
    assert pd.read_csv(longer.history)["epoch"].tolist() == [0, 1, 2, 3]
