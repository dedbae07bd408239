"""Scheduled retraining with DVC, as a user does it: new images arrive (synth.n grows), `dvc repro`
again. The split is frozen by default, so the promotion gate never scores a model on images it
trained on; the decode cache of the old data is removed."""

from __future__ import annotations

import json
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import SSLMAE
from tests.system.test_dvc_repro import make_project, sh

TRAIN_SIDES = ("labeled", "unlabeled", "val")  # what a model learned from, or was selected on


def _grow(project, n: int, **split) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["synth"]["n"] = n
    params["split"].update(split)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_retraining_keeps_the_test_set_and_the_gate_never_scores_training_images(tmp_path):
    project = make_project(tmp_path, grid={"trials": ["w0.3"]})
    sh(["dvc", "repro"], project, timeout=600)
    first = pd.read_csv(project / "data/split.csv")
    trained_first = set(first.loc[first["subset"].isin(TRAIN_SIDES), "image"])
    test_first = set(first.loc[first["subset"] == "test", "image"])
    assert json.loads((project / "runs/registry/promotion.json").read_text())["overlap"] == {"challenger": 0}

    _grow(project, 110)  # 30 new scenes
    sh(["dvc", "repro"], project, timeout=600)
    second = pd.read_csv(project / "data/split.csv")
    assert len(second) == 110
    test_second = set(second.loc[second["subset"] == "test", "image"])
    assert not test_second & trained_first, "an image the first model trained on is in the new test set"
    assert test_first <= test_second, "an old test image left the test set"
    history = pd.read_csv(project / "data/split.history.csv")
    assert set(history["generation"]) == {0, 1}
    assert set(history.loc[history["generation"] == 1, "image"]) == set(second["image"]) - set(first["image"])
    promotion = json.loads((project / "runs/registry/promotion.json").read_text())
    # grown under the frozen split: the same data, so compared with (and able to replace) its champion
    assert promotion["name"] == "sslmae" and promotion["champion_version"] == 1
    assert promotion["overlap"] == {"champion": 0, "challenger": 0}
    # one decode cache: the first data's was removed when the second was built
    assert len(list((project / "data/cache").glob("*.npy"))) == 1

    # starting over is explicit: a new test set is other data, with a champion of its own (the old one stays);
    # a model trained on the old split, registered for it, would be scored on images it trained on: refused
    _grow(project, 110, frozen=False, seed=7)
    sh(["dvc", "repro", "split"], project, timeout=300)
    resplit = pd.read_csv(project / "data/split.csv")
    overlap = len(set(resplit.loc[resplit["subset"] == "test", "image"]) & trained_first)
    assert overlap > 0
    registered = subprocess.run(SSLMAE + ["register", "--model", "runs/selected/model.pt"], cwd=project,
                                capture_output=True, text=True)
    assert registered.returncode == 0, registered.stderr
    assert "registered sslmae-" in registered.stdout and "version 1" in registered.stdout
    proc = subprocess.run(SSLMAE + ["promote", "--out", str(tmp_path / "promotion.json")], cwd=project,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "trained on" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    forced = subprocess.run(SSLMAE + ["promote", "--out", str(tmp_path / "promotion.json"), "--allow-overlap"],
                            cwd=project, capture_output=True, text=True)
    assert forced.returncode == 0, forced.stderr
    decision = json.loads((tmp_path / "promotion.json").read_text())
    assert decision["name"].startswith("sslmae-") and decision["overlap"]["challenger"] > 0
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("sslmae", "champion").version
    assert int(champion) == promotion["champion_now"]  # the old data's, untouched


def test_a_model_file_records_the_images_it_trained_on(tiny_cfg):
    from sslmae.seen import image_hashes
    from sslmae.train.run import train

    result = train(tiny_cfg)
    meta = torch.load(result.checkpoint, weights_only=True)["meta"]
    subsets = pd.read_csv(tiny_cfg.data.split_file)
    seen = subsets.loc[subsets["subset"].isin(TRAIN_SIDES), "image"]
    assert np.array_equal(meta["trained_on"].numpy().view(np.uint64), image_hashes(seen))
