"""synth -> split -> train -> evaluate through the CLI, on CPU, and the model must learn."""

import json

import numpy as np
import pytest
import torch

from sslmae.cli import main
from sslmae.config import updated
from sslmae.train.checkpoint import load_model


def run_cli(*args):
    assert main([str(a) for a in args]) == 0


@pytest.mark.slow
def test_pipeline_learns_far_above_chance(tmp_path):
    data, split = tmp_path / "data", tmp_path / "split.csv"
    run_cli("synth", "--out", data, "--n", 320, "--size", 32, "--seed", 0)
    run_cli("split", data, "--out", split, "--fraction", 0.3, "--seed", 0)
    overrides = [
        f"data.dir={data}", f"data.split_file={split}", "data.img_size=32",
        "model.size=micro", "model.patch_size=4", "model.mask_patch_size=8",
        "train.epochs=12", "train.batch_size=16", "train.lr=0.002", "train.warmup_epochs=1",
        "train.progress_bar=false", "train.accelerator=cpu",
        f"train.out_dir={tmp_path / 'train'}", f"evaluate.out_dir={tmp_path / 'eval'}",
    ]
    run_cli("train", *overrides)
    run_cli("evaluate", *overrides)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    test_y = np.loadtxt(data / "labels.csv", delimiter=",", skiprows=1, usecols=range(1, 9))
    chance = test_y.mean(0).mean()  # AUPRC of a random ranking = prevalence
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


def test_train_is_deterministic_on_cpu(tiny_cfg, tmp_path):
    from sslmae.train.run import train

    a = train(tiny_cfg)
    cfg_b = updated(tiny_cfg, {"train.out_dir": str(tmp_path / "b")})
    b = train(cfg_b)
    sa = torch.load(a.checkpoint, weights_only=True)["state_dict"]
    sb = torch.load(b.checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.val_metrics == b.val_metrics and a.w_per_epoch == b.w_per_epoch == [0.5, 0.5]


@pytest.mark.parametrize("mode, learn_w", [("supervised", True), ("supervised_baseline", False)])
def test_modes_train(tiny_cfg, mode, learn_w):
    from sslmae.train.run import train

    cfg = updated(tiny_cfg, {"loss.mode": mode, "loss.learn_w": learn_w, "loss.w_lr": 0.5})
    result = train(cfg)
    assert result.checkpoint.is_file() and result.val_metrics["macro_auprc"] > 0
    ws = result.w_per_epoch
    if learn_w:
        assert all(0 < w < 1 for w in ws) and ws[-1] != 0.5
    else:
        assert ws == [1.0, 1.0]  # the baseline is L_cls alone


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, synth_dir):
    assert main(["train", "model.mask_ratio=1.5"]) == 2
    err = capsys.readouterr().err
    assert "model.mask_ratio" in err and "Traceback" not in err
    assert main(["split", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "labels.csv: not found" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    assert main(["evaluate", "--model", str(tmp_path / "none.pt")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_label_fraction_curve_feeds_the_report(tmp_path, synth_dir):
    import pandas as pd

    from tests.conftest import tiny_overrides, write_predefined

    # a predefined train/val/test table (the authors' protocol): only the labeled share may change
    base = pd.read_csv(write_predefined(synth_dir, tmp_path / "predefined.csv"))
    over = tiny_overrides(tmp_path, synth_dir, tmp_path / "s.csv")
    args = ["fractions", "--fractions", "0.2", "0.5", "--modes", "semi_supervised", "supervised_baseline",
            "--work", str(tmp_path / "fr"), "--out", str(tmp_path / "fr.csv"),
            "--predefined", str(tmp_path / "predefined.csv"), "--equal-steps", *over, "train.epochs=1"]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "fr.csv")
    assert len(table) == 4 and set(table["mode"]) == {"semi_supervised", "supervised_baseline"}
    assert table["test_macro_auprc"].between(0, 1).all()
    assert list(table["w"]) == [0.5, 1.0, 0.5, 1.0]  # the baseline's objective is L_cls alone
    from sslmae.fractions import step_factor

    for fraction, rows in table.groupby("fraction"):
        # the baseline takes as many optimizer steps as the semi-supervised run: more epochs
        factor = step_factor(pd.read_csv(tmp_path / "fr" / f"split_{fraction}.csv"), 8)
        assert factor > 1 and list(rows["epochs"]) == [1, round(factor)]
    for fraction in ("0.2", "0.5"):
        split = pd.read_csv(tmp_path / "fr" / f"split_{fraction}.csv")
        for side in ("val", "test"):
            assert set(split.loc[split["subset"] == side, "image"]) == set(base.loc[base["split"] == side, "image"])
    sel = tmp_path / "fr" / "semi_supervised_0.2"
    assert main(["report", "--run", str(sel), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64") >= 2


def test_visible_only_extension_trains_and_evaluates(tiny_cfg, tmp_path):
    from sslmae.evaluate import evaluate
    from sslmae.train.checkpoint import load_model
    from sslmae.train.run import train

    cfg = updated(tiny_cfg, {"model.encoder": "visible_only", "model.decoder_dim": 16, "model.decoder_depth": 1})
    result = train(cfg)
    model, saved, _, _ = load_model(result.checkpoint)
    assert saved.model.encoder == "visible_only" and model.decoder is not None
    metrics = evaluate(result.checkpoint, tmp_path / "ev", subset="test")
    assert 0 < metrics["macro_auprc"] <= 1


def test_fractions_modes_keep_trailing_overrides_and_refuse_unknown_modes(tmp_path, capsys):
    from sslmae.fractions import modes_and_overrides

    assert modes_and_overrides(["semi_supervised", "train.epochs=3", "supervised_baseline"]) == (
        ["semi_supervised", "supervised_baseline"], ["train.epochs=3"])
    code = main(["fractions", "--modes", "semi_supervised", "semisupervised", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "f.csv")])
    assert code != 0 and "unknown mode(s) ['semisupervised']" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "f.csv").exists()
