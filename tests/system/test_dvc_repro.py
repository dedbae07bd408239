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
    params["synth"].update(n=80, size=32)
    params["data"]["img_size"] = 32
    params["split"]["fraction"] = 0.3
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


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_and_reports_metrics(project, s3, tmp_path):
    sh(["dvc", "repro"], project, timeout=600)
    teammate_reproduces_from_a_clone(project, s3, tmp_path / "clone")
    for path in ("data/synth/labels.csv", "data/dataset/manifest.parquet", "data/split.csv",
                 "runs/grid/w0.3/model.pt", "runs/grid/w0.7/history.csv", "runs/grid/learned/model.pt",
                 "runs/selected/model.pt", "runs/selected/trials.csv", "runs/eval/metrics.json",
                 "runs/eval/per_class.csv", "runs/registry/promotion.json", "runs/report.html", "dvc.lock"):
        assert (project / path).is_file(), path
    # the MLflow store at the project root: a grid parent with nested trials, a champion
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sslmae").experiment_id])
    parent = [r for r in runs if r.data.tags.get("sslmae.kind") == "grid"]
    assert len(parent) == 1
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert len(nested) == 3
    assert int(client.get_model_version_by_alias("sslmae", "champion").version) == 1
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], project))
    flat = json.dumps(shown)
    assert "runs/eval/metrics.json" in flat and "macro_auprc" in flat and "runs/selected/selected.json" in flat
    # a second repro is a no-op: every stage is up to date
    again = sh(["dvc", "repro"], project)
    assert "didn't change, skipping" in again or "up to date" in again
    assert "Running stage" not in again
    # the same data from another place: ingest reruns, its output is the same bytes, nothing retrains
    shutil.copytree(project / "data" / "synth", project / "elsewhere" / "synth")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "elsewhere/synth"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    moved = sh(["dvc", "repro"], project, timeout=600)
    assert "Running stage 'ingest'" in moved
    assert not any(f"Running stage '{s}" in moved for s in ("split", "trial", "select")), moved
    # changing a training knob reruns train and evaluate only
    sh(["dvc", "repro", "--dry", "--force-downstream"], project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["loss"]["w"] = 0.7
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["dvc", "repro"], project, timeout=600)
    assert "Running stage 'trial@learned'" in out  # its starting w changed; fixed-w trials resume as finished
    assert "Running stage 'select'" in out
    assert all(f"Running stage '{s}'" not in out for s in ("synth", "ingest", "split"))
    sh(["dvc", "plots", "show", "--json"], project)
    # one more trial in the grid trains that trial only (the others' configs did not change)
    params["grid"]["trials"].append("w0.5")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grown = sh(["dvc", "repro"], project, timeout=600)
    assert "Running stage 'trial@w0.5'" in grown and "Running stage 'select'" in grown
    assert not any(f"Running stage 'trial@{t}'" in grown for t in ("w0.3", "w0.7", "learned")), grown
    assert len(pd.read_csv(project / "runs/selected/trials.csv")) == 4
    # the scoring code changes: DVC says which stages must rerun, from the code they import
    with open(project / "sslmae" / "inference.py", "a") as fh:
        fh.write("# a change to the scoring loop\n")
    stale = set(json.loads(sh(["dvc", "status", "--json"], project)))
    assert stale == {"trial@w0.3", "trial@w0.7", "trial@learned", "trial@w0.5", "select", "evaluate", "register",
                     "promote"}, stale


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
def test_a_shard_dataset_is_a_dvc_output_and_trials_stream_it(tmp_path):
    """data.format=shards: the ingest stage's output is the shard folder (a few large objects
    instead of one per image) and a trial streams it (data.loading auto)."""
    project = make_project(tmp_path, data={"format": "shards", "shard_bytes": 65536}, tracking={"enabled": False})
    out = sh(["dvc", "repro", "trial@w0.3"], project, timeout=600)
    assert "Running stage 'trial@w0.3'" in out
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    dataset = next(o for o in lock["stages"]["ingest"]["outs"] if o["path"] == "data/dataset")
    shards = sorted((project / "data/dataset/shards").glob("*.tar"))
    assert len(shards) >= 2 and not (project / "data/dataset/images").exists()
    assert dataset["nfiles"] == len(shards) + 3  # + manifest, ingest report, the folder's .sslmae.json marker
    assert (project / "runs/grid/w0.3/model.pt").is_file()
    assert not (project / "data/cache").exists() or not list((project / "data/cache").glob("*.npy"))


@pytest.mark.slow
def test_pipeline_runs_on_a_real_dataset_by_changing_params_only(tmp_path):
    from tests.conftest import UCM

    if not (UCM / "labels.csv").is_file():
        pytest.skip(f"{UCM} not present")
    project = make_project(tmp_path, data={"source": str(UCM), "dir": "data/ucm"},
                           train={"epochs": 1, "batch_size": 64, "progress_bar": False, "accelerator": "cpu"},
                           grid={"trials": ["w0.5", "learned"]},
                           split={"fraction": 0.05})
    out = sh(["dvc", "repro"], project, timeout=900)
    assert "layout: labels-csv (detected)" in out and "ingested 2100 images, 17 labels" in out
    metrics = json.loads((project / "runs/eval/metrics.json").read_text())
    assert metrics["n_samples"] > 300 and metrics["n_labels_absent"] == 0
    # an already ingested folder is a valid source too: re-ingesting it is an identity
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(source="data/ucm", dir="data/ucm2")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "repro", "ingest"], project, timeout=600)
    import pyarrow.parquet as pq

    a = pq.read_table(project / "data/ucm/manifest.parquet").drop(["source"])
    b = pq.read_table(project / "data/ucm2/manifest.parquet").drop(["source"])
    assert a.equals(b)


@pytest.mark.slow
def test_the_baseline_mode_runs_through_dvc_unchanged(tmp_path):
    """Another mode is a params change only: its one trial, `baseline`, is the grid DVC fans out."""
    project = make_project(tmp_path, loss={"mode": "supervised_baseline"}, grid={"trials": ["baseline"]},
                           tracking={"enabled": False})
    dvc_yaml = (project / "dvc.yaml").read_bytes()
    out = sh(["dvc", "repro", "evaluate"], project, timeout=600)
    assert "Running stage 'trial@baseline'" in out and (project / "runs/grid/baseline/model.pt").is_file()
    selected = json.loads((project / "runs/selected/selected.json").read_text())
    assert selected["trial"] == "baseline" and selected["w_final"] == 1.0  # L_cls alone
    assert json.loads((project / "runs/eval/metrics.json").read_text())["n_samples"] > 0
    assert (project / "dvc.yaml").read_bytes() == dvc_yaml
