"""A brand-new sqlite tracking store takes trainings started at once (a DVC queue with -j 4, parallel
trials): MLflow creates a store's tables on first use, and before sslmae created them under a lock,
three of four such processes died with "table ... already exists"."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import SSLMAE, tiny_overrides

pytestmark = pytest.mark.slow


def test_four_trainings_started_at_once_on_a_new_store_all_finish_and_are_logged(tmp_path, synth_dir, split_file):
    store = tmp_path / "new" / "mlflow.db"  # neither the file nor its folder exists yet
    uri = f"sqlite:///{store}"
    procs = []
    for i in range(4):
        args = [a for a in tiny_overrides(tmp_path / f"t{i}", synth_dir, split_file) if a != "tracking.enabled=false"]
        args += ["train.epochs=1", f"tracking.uri={uri}", "tracking.experiment=parallel", "data.cache=false"]
        procs.append(subprocess.Popen([*SSLMAE, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for code, err in results:
        assert code == 0, err[-2000:]
        assert "already exists" not in err

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert all(r.data.tags.get("sslmae.kind") == "train" for r in runs)


def test_a_store_made_ready_once_is_not_locked_again(tmp_path, monkeypatch):
    from sslmae.tracking import runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert runs.ready_store(uri) == uri and (tmp_path / "mlflow.db").stat().st_size > 0
    monkeypatch.setattr(runs.fcntl, "flock", lambda *a: pytest.fail("locked again"))
    assert runs.ready_store(uri) == uri
    assert runs.ready_store("http://127.0.0.1:1") == "http://127.0.0.1:1"  # a server creates its own store
