"""The promotion gate scores exactly the rows `sslmae evaluate` scores (data.dir, data.split_file and
evaluate.split from params, a flag winning over them), whatever the model was trained with; the
registry here is MLflow's local sqlite store (the server: tests/system/test_tracking.py)."""

import json

import pandas as pd
import pytest

from sslmae.cli.main import main
from sslmae.split import split_dataset
from tests.conftest import tiny_overrides


def test_evaluate_and_promote_score_the_same_rows(tmp_path, synth_dir, split_file, tiny_run, capsys):
    trained_with = tiny_overrides(tmp_path, synth_dir, split_file)
    model = tiny_run / "model.pt"  # `sslmae train` with trained_with's params (the session's tiny run)
    # later, params name another split: both commands follow params, not the model file's paths
    other = split_dataset(synth_dir, tmp_path / "other.csv", fraction=0.5, val=0.1, test=0.4, seed=9)
    tracked = [o for o in trained_with if not o.startswith(("tracking.", "data.split_file"))] + [
        f"data.split_file={tmp_path / 'other.csv'}", "tracking.enabled=true",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "tracking.registered_model=m",
        "tracking.allow_overlap=true"]  # the other split tests images the model trained on: compared on purpose
    assert main(["evaluate", "--model", str(model), *tracked]) == 0
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert scored["n_samples"] == (other["subset"] == "test").sum() != (pd.read_csv(split_file)["subset"] == "test").sum()
    assert main(["register", "--model", str(model), *tracked]) == 0
    capsys.readouterr()
    assert main(["promote", "--out", str(tmp_path / "p.json"), *tracked]) == 0
    said = capsys.readouterr().err
    decision = json.loads((tmp_path / "p.json").read_text())
    assert decision["challenger_score"] == scored["macro_auprc"] and decision["subset"] == "test"
    assert decision["overlap"]["challenger"] > 0  # recorded, and allowed by tracking.allow_overlap
    assert f"evaluated {scored['n_samples']} test images" in said
    # a flag wins over params, for both
    assert main(["evaluate", "--model", str(model), "--subset", "val", "--out", str(tmp_path / "ev_val"),
                 *tracked]) == 0
    val = json.loads((tmp_path / "ev_val" / "metrics.json").read_text())
    assert main(["promote", "--subset", "val", "--out", str(tmp_path / "p_val.json"), *tracked]) == 0
    assert json.loads((tmp_path / "p_val.json").read_text())["challenger_score"] == val["macro_auprc"]
    assert val["n_samples"] == (other["subset"] == "val").sum()


@pytest.fixture(scope="module")
def store_set_by_a_module_fixture(tmp_path_factory):
    """What test_mlflow_model's module fixture does through log_mlflow_model: MLflow's set_tracking_uri
    also exports $MLFLOW_TRACKING_URI, before any test's own fixtures run."""
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('leak') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def test_each_test_starts_from_the_sessions_environment(store_set_by_a_module_fixture):
    """A later test's child processes (a fresh clone's `make run`) must not log into that store."""
    import os

    from tests.conftest import SESSION_ENV

    assert os.environ.get("MLFLOW_TRACKING_URI") == SESSION_ENV.get("MLFLOW_TRACKING_URI")
