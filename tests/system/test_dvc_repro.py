"""The main job for real: `dvc repro` in a fresh git repo holding the project's files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.support.datasets import rgb, save

BIN = Path(sys.executable).parent


def sh(cmd, cwd, **kw):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def make_project(tmp_path, **sections):
    """A copy of the project (tracked files only) as a fresh git repo with one commit."""
    dst = tmp_path / "proj"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["synth"].update(n=80, unlabeled=40, size=32)  # 80 labeled scenes and a pool of 40
    params["data"]["img_size"] = 32
    params["model"].update(backbone="micro", patch_size=4, mask_patch_size=8)
    params["train"].update(epochs=2, batch_size=8, progress_bar=False, accelerator="cpu")
    params["grid"].update(trials=["w0.3", "w0.7", "learned"])
    for section, values in sections.items():
        params[section].update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], dst)
    return dst


# The main job end to end (make run, a second no-op run, a teammate's clone, reruns by what changed) is
# tests/system/test_newcomer.py: it runs the README's commands on the same shrunk project.


def teammate_reproduces_from_a_clone(project: Path, s3, clone: Path) -> None:
    """README's "Share a run": push to an S3 remote (endpointurl for S3-compatible stores), then a
    fresh clone pulls and finds everything up to date: nothing to rerun, metrics readable."""
    sh(["dvc", "remote", "add", "-d", "store", f"s3://{s3.bucket}/dvc"], project)
    sh(["dvc", "remote", "modify", "store", "endpointurl", s3.endpoint], project)
    sh(["git", "add", "dvc.lock", ".dvc/config"], project)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"], project)
    sh(["dvc", "push"], project, timeout=300)
    sh(["git", "clone", "-q", str(project), str(clone)], clone.parent)
    sh(["dvc", "pull"], clone, timeout=300)
    assert json.loads(sh(["dvc", "status", "--json"], clone)) == {}
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], clone))[""]["data"]
    assert set(shown) == {"runs/selected/selected.json", "runs/eval/metrics.json"}
    assert all("error" not in entry and entry["data"] for entry in shown.values()), shown  # every file loaded
    assert "macro_auprc" in shown["runs/eval/metrics.json"]["data"]
    again = sh(["dvc", "repro"], clone, timeout=300)
    assert "Running stage" not in again, again




@pytest.mark.slow
def test_pipeline_runs_on_a_real_dataset_by_changing_params_only(tmp_path):
    from tests.conftest import UCM

    if not (UCM / "labels.csv").is_file():
        pytest.skip(f"{UCM} not present")
    archive = tmp_path / "archive"  # a separate folder of tiles nobody labeled: the user's pool
    for i in range(40):
        save(archive / ("2025" if i % 2 else "2026") / f"tile{i:03d}.png", rgb(1000 + i, (64, 64)))
    project = make_project(tmp_path, data={"source": str(UCM), "dir": "data/ucm", "unlabeled": [str(archive)]},
                           train={"epochs": 1, "batch_size": 64, "progress_bar": False, "accelerator": "cpu"},
                           grid={"trials": ["w0.5"]},
                           split={"fraction": 0.05})
    out = sh(["dvc", "repro"], project, timeout=900)
    assert "layout: labels-csv (detected)" in out and "ingested 2100 images + 40 unlabeled (the pool), 17 labels" in out
    metrics = json.loads((project / "runs/eval/metrics.json").read_text())
    assert metrics["n_samples"] > 300 and metrics["n_labels_absent"] == 0
    trained = json.loads((project / "runs/grid/w0.5/metrics.json").read_text())
    assert trained["pool_images"] == 40 and trained["labeled_images"] > 0  # the pool was trained on
    split = pd.read_csv(project / "data/split.csv")
    assert set(split.loc[split["image"].str.startswith("tile"), "subset"]) == {"unlabeled"}
    # re-ingesting an ingested folder is an identity: tests/integration/test_ingest.py, on synthetic data


@pytest.mark.slow
def test_the_baseline_mode_alone_runs_through_dvc_to_a_registered_model_streaming_shards(tmp_path):
    """One knob: loss.mode=supervised_baseline with the default grid (no other change) runs `dvc repro`
    to a registered model; the grid follows the mode (its one trial, `baseline`; the w trials are
    skipped, each leaving its marker). The same project ingests as shards (data.format=shards): the
    ingest stage's output is the shard folder (a few large objects instead of one per image) and the
    trial streams it (data.loading auto)."""
    from sslmae.config.schema import DEFAULT_TRIALS

    project = make_project(tmp_path, loss={"mode": "supervised_baseline"}, grid={"trials": DEFAULT_TRIALS},
                           data={"format": "shards", "shard_bytes": 65536})
    dvc_yaml = (project / "dvc.yaml").read_bytes()
    out = sh(["dvc", "repro"], project, timeout=900)
    assert "Running stage 'trial@baseline'" in out and (project / "runs/grid/baseline/model.pt").is_file()
    for trial in ("w0.3", "w0.7", "learned"):
        assert [p.name for p in (project / "runs/grid" / trial).iterdir()] == ["skipped.json"]
    selected = json.loads((project / "runs/selected/selected.json").read_text())
    assert selected["trial"] == "baseline" and selected["w_final"] == 1.0  # L_cls alone
    assert json.loads((project / "runs/eval/metrics.json").read_text())["n_samples"] > 0
    registered = json.loads((project / "runs/registry/registered.json").read_text())
    assert registered["name"] == "sslmae" and registered["version"] == 1
    assert json.loads((project / "runs/registry/promotion.json").read_text())["promoted"]
    assert (project / "dvc.yaml").read_bytes() == dvc_yaml
    # shards: a DVC output of a few objects, streamed by the trial (no decode cache)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    dataset = next(o for o in lock["stages"]["ingest"]["outs"] if o["path"] == "data/dataset")
    shards = sorted((project / "data/dataset/shards").glob("*.tar"))
    assert len(shards) >= 2 and not (project / "data/dataset/images").exists()
    assert dataset["nfiles"] == len(shards) + 3  # + manifest, ingest report, the folder's .sslmae.json marker
    assert not (project / "data/cache").exists() or not list((project / "data/cache").glob("*.npy"))
