"""MLflow tracking, grid nesting, registry, promotion, prediction and lineage against a real
tracking server that keeps its artifacts in S3 (SeaweedFS), as a team's shared server would."""

import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from sslmae.cli.main import main
from sslmae.config import load_config
from tests.conftest import tiny_overrides


@pytest.fixture
def tracked(tmp_path, synth_dir, split_file, mlflow_s3_server, monkeypatch):
    """Overrides for a tiny grid that logs to the test's MLflow server (artifacts in S3)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_s3_server[0])
    exp = f"exp-{tmp_path.name}"
    over = [o for o in tiny_overrides(tmp_path, synth_dir, split_file) if not o.startswith("tracking.")]
    return over + ["tracking.enabled=true", f"tracking.experiment={exp}", f"tracking.registered_model=m-{tmp_path.name}",
                   "grid.trials=[w0.3, w0.7, learned]", f"grid.out_dir={tmp_path / 'grid'}"]


def runs(exp_name):
    client = MlflowClient()
    exp = client.get_experiment_by_name(exp_name)
    return client.search_runs([exp.experiment_id])


def lineage_is_followable(cfg, sel, ev, tmp_path, tracked, bucket, s3_server):
    """The version's source run is the trial that trained it (params, per-epoch metrics, the model
    stored once, in S3); every run has the git commit and a label in its name; training and
    evaluation runs name the dataset by its digest; the report is on the grid's run; registering
    the same weights again, or selecting again, changes nothing."""
    import subprocess

    client = MlflowClient()
    name = cfg.tracking.registered_model
    version = client.get_model_version(name, "1")
    selected = json.loads((sel / "selected.json").read_text())
    trial = client.get_run(version.run_id)
    assert version.run_id == selected["run_id"] and trial.data.tags["sslmae.kind"] == "train"
    assert trial.data.params["loss.mode"] == "semi_supervised"
    assert len(client.get_metric_history(trial.info.run_id, "train_loss")) == 2
    assert version.source.startswith("models:/m-")  # the MLflow Model the trial logged
    assert client.get_logged_model(version.source.removeprefix("models:/")).source_run_id == trial.info.run_id
    kinds = [r.data.tags["sslmae.kind"] for r in runs(cfg.tracking.experiment)]
    assert "register" not in kinds  # no second copy of the model file
    exp_id = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id  # the bucket is shared by tests
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"artifacts/{exp_id}/")
            .get("Contents", [])]
    assert sum(k.endswith("/artifacts/model.pt") for k in keys) == 3  # one per trial, none for the registry
    assert not [k for k in keys if k.endswith("/model/model.pt")]  # not also as a plain run artifact
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    every = runs(cfg.tracking.experiment)
    assert all(r.data.tags.get("mlflow.source.git.commit") == commit for r in every)
    assert all(" @ " + commit[:7] in r.info.run_name for r in every)
    digest = hashlib.sha256((Path(cfg.data.dir) / "labels.csv").read_bytes()).hexdigest()
    for r in every:
        if r.data.tags["sslmae.kind"] in ("train", "evaluate"):
            (used,) = r.inputs.dataset_inputs
            assert used.dataset.digest == digest[:16] and r.data.tags["sslmae.dataset.sha256"] == digest
    # the same weights again: no new version
    assert main(["register", "--model", str(sel / "model.pt"), *tracked]) == 0
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    # select again on the same trials: the grid run is updated, nobody is re-parented
    parent = selected["parent_run_id"]
    assert main(["grid", "--select-only", "--out", str(sel), *tracked]) == 0
    kinds = [r.data.tags["sslmae.kind"] for r in runs(cfg.tracking.experiment)]
    assert kinds.count("grid") == 1 and json.loads((sel / "selected.json").read_text())["parent_run_id"] == parent
    # the report goes to the grid's run
    assert main(["report", "--grid", str(sel), "--eval", str(ev), "--out", str(tmp_path / "r.html"), *tracked]) == 0
    assert "r.html" in {a.path for a in client.list_artifacts(parent)}


@pytest.mark.slow
def test_grid_registry_promotion_and_prediction(tmp_path, tracked, synth_dir, split_file, mlflow_s3_server, s3_server,
                                                capfd):
    cfg = load_config(None, tracked)
    sel = tmp_path / "selected"
    assert main(["grid", "--out", str(sel), *tracked]) == 0
    table = pd.read_csv(sel / "trials.csv")
    assert table["trial"].tolist() == ["w0.3", "w0.7", "learned"]
    selected = json.loads((sel / "selected.json").read_text())
    assert selected["value"] == table["val_macro_auprc"].max() and (sel / "model.pt").is_file()

    all_runs = runs(cfg.tracking.experiment)
    kinds = [r.data.tags["sslmae.kind"] for r in all_runs]
    assert kinds.count("train") == 3 and kinds.count("grid") == 1
    parent = next(r for r in all_runs if r.data.tags["sslmae.kind"] == "grid")
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    client = MlflowClient()
    trial = children[0]
    for key in ("train_loss", "train_l_rec", "train_l_cls", "w", "lr", "val_macro_auprc"):
        assert len(client.get_metric_history(trial.info.run_id, key)) == 2, key  # one per epoch
    assert trial.data.params["model.mask_ratio"] == "0.6" and "torch" in trial.data.tags
    arts = {a.path for a in client.list_artifacts(trial.info.run_id)} | {
        a.path for a in client.list_artifacts(trial.info.run_id, "plots")}
    assert {"metrics.json", "history.csv", "plots/learning_curves.png", "plots/w_trajectory.png"} <= arts

    # evaluate the winner on test, register it, promote: the first model becomes champion
    ev = tmp_path / "eval"
    assert main(["evaluate", "--model", str(sel / "model.pt"), "--out", str(ev), *tracked]) == 0
    assert main(["register", "--model", str(sel / "model.pt"), "--metrics", str(ev / "metrics.json"), *tracked]) == 0
    lineage_is_followable(cfg, sel, ev, tmp_path, tracked, mlflow_s3_server[1], s3_server)
    assert main(["promote", "--out", str(tmp_path / "p1.json"), *tracked]) == 0
    first = json.loads((tmp_path / "p1.json").read_text())
    assert first["promoted"] and first["champion_version"] is None and first["champion_now"] == 1
    # a second, worse challenger (the worst trial) is not promoted
    worst = table.loc[table["val_macro_auprc"].idxmin(), "checkpoint"]
    assert main(["register", "--model", worst, *tracked]) == 0
    capfd.readouterr()
    assert main(["promote", "--out", str(tmp_path / "p2.json"), *tracked]) == 0
    said = capfd.readouterr().err  # not a terminal, as in DVC logs: no download bars, no temporary paths
    name = cfg.tracking.registered_model
    assert "Downloading artifacts" not in said and tempfile.gettempdir() not in said, said
    assert "test images in" in said and f"models:/{name}/2 (challenger)" in said and f"models:/{name}/1 (champion)" in said
    second = json.loads((tmp_path / "p2.json").read_text())
    assert second["challenger_version"] == 2 and second["champion_version"] == 1
    assert second["champion_now"] == (2 if second["challenger_score"] > second["champion_score"] else 1)
    promote_runs = [r for r in runs(cfg.tracking.experiment) if r.data.tags["sslmae.kind"] == "promote"]
    assert len(promote_runs) == 2 and all("challenger_score" in r.data.metrics for r in promote_runs)

    # predict with the champion from the registry; an unreadable image is reported, not fatal
    images = tmp_path / "incoming"
    images.mkdir()
    for p in sorted((synth_dir / "images").iterdir())[:5]:
        (images / p.name).write_bytes(p.read_bytes())
    (images / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pred.csv"
    name = cfg.tracking.registered_model
    assert main(["predict", "--model", f"models:/{name}@champion", "--input", str(images), "--out", str(out),
                 *tracked]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == 6 and pred["error"].notna().sum() == 1
    ok = pred[pred["error"].isna()]
    assert ok.filter(like="prob_").notna().all().all() and ok.filter(like="prob_").shape[1] == 8
    assert main(["predict", "--model", f"models:/{name}@champion", "--input", str(images),
                 "--out", str(tmp_path / "p.parquet"), "--thresholds", "0.5", *tracked]) == 0
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 6




