"""The pipeline in the real image (built once per session by tests/support/container.py): the whole DAG
through kfp's DockerRunner (`sslmae pipeline run-containers`), a failing step failing the run, and
a trial container killed mid-run whose successor resumes from the checkpoint kept in S3. Skipped,
with the reason, where no container engine can be used."""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest
import torch

from sslmae.cli.main import main
from sslmae.config import load_config, to_dict
from sslmae.datasets.store import Store
from tests.conftest import REPO, tiny_overrides
from tests.support.container import project_image
from tests.support.s3server import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.container


@pytest.fixture(scope="session")
def image():
    return project_image()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_run_containers_runs_the_whole_dag_in_the_image(image, tmp_path, monkeypatch, capfd):
    """`sslmae pipeline run-containers` with nothing running: it starts the Docker API (podman's
    service, where no docker engine answers) and an MLflow server, runs every step in the image
    as its user 10001, and stops both."""
    from mlflow import MlflowClient

    for var in ("DOCKER_HOST", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "run"
    assert main(["pipeline", "run-containers", "--params", str(REPO / "params.yaml"), "--root", str(root),
                 "--image", image.tag, "tracking.experiment=containers", "tracking.registered_model=containers"]) == 0
    out = capfd.readouterr().out
    # every task ran and wrote its artifacts, as run-local's do
    (run_dir,) = (root / "pipeline_root").iterdir()
    for rel in ("ingest/dataset/manifest.parquet", "split/split_file", "select/selected/model.pt",
                "evaluate/evaluation/metrics.json", "register-and-promote/decision/promotion.json", "report/page"):
        assert (run_dir / rel).exists(), rel
    trials = sorted(run_dir.glob("for-loop-*/train-trial/model/model.pt"))
    assert len(trials) == 3
    if os.geteuid() == 0:  # rootful engine: the image's user 10001 is 10001 here too
        assert (run_dir / "ingest" / "dataset" / "manifest.parquet").stat().st_uid == 10001
    assert "<html" in (run_dir / "report" / "page").read_text()[:300].lower()
    # the registry the containers used, kept under the run folder
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    assert int(client.get_model_version_by_alias("containers", "champion").version) == 1
    runs = client.search_runs([client.get_experiment_by_name("containers").experiment_id])
    kinds = sorted(r.data.tags["sslmae.kind"] for r in runs)
    assert kinds.count("train") == 3 and "grid" in kinds and "promote" in kinds
    # what it started, it stopped
    started = re.findall(r"(podman system service|mlflow server) \(pid (\d+)\) (?:serves|on)", out)
    stopped = re.findall(r"(podman system service|mlflow server) \(pid (\d+)\) stopped", out)
    assert sorted(started) == sorted(stopped) and {s[0] for s in started} >= {"mlflow server"}
    if image.engine == "podman":
        assert "podman system service" in {s[0] for s in started}
    assert all(_gone(int(pid)) for _, pid in stopped)


def test_a_step_that_fails_in_its_container_fails_the_run(image, tmp_path, monkeypatch):
    """kfp 2.17 reads a container's status after auto-removal and takes podman's 404 for success;
    run-containers reads it before removing the container."""
    import kfp.local
    from kfp import dsl

    from pipelines.launch import PODMAN_CONF, _keeping_exit_status, _local_image
    from sslmae.kubeflow.services import docker_api

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with docker_api(PODMAN_CONF, log=lambda *_: None):
        tag = _local_image(image.tag)

        @dsl.component(base_image=tag, install_kfp_package=False)
        def fails():
            raise SystemExit(3)

        @dsl.pipeline
        def one_step():
            fails()

        root = tmp_path / "root"
        root.mkdir(mode=0o777)
        os.chmod(root, 0o777)
        kfp.local.init(runner=kfp.local.DockerRunner(network_mode="host"), pipeline_root=str(root))
        with _keeping_exit_status(), pytest.raises(RuntimeError, match="FAILURE|failed"):
            one_step()


@pytest.mark.slow
def test_a_killed_trial_container_resumes_from_the_checkpoint_in_s3(image, s3, tmp_path, synth_dir, split_file,
                                                                    monkeypatch):
    """Container 1 runs a trial with its checkpoints kept in S3 (SeaweedFS, reached over the host's
    network) and is killed mid-run; container 2, a fresh one with an empty output folder as a
    retried pod gets, resumes from the stored checkpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    store = Store(f"s3://{s3.bucket}/work")
    cfg = load_config(None, tiny_overrides(tmp_path, synth_dir, split_file) + [
        "train.epochs=40", "train.checkpoint_every=1", "data.dir=/data/ds", "data.split_file=/data/split.csv",
        "data.cache_dir=/workspace/cache"])
    (tmp_path / "params.json").write_text(json.dumps(to_dict(cfg)))
    outs = tmp_path / "outs"
    outs.mkdir(mode=0o777)
    os.chmod(outs, 0o777)  # the image's user 10001 writes container 2's output here
    code = ("import json, sys; from sslmae.kubeflow.steps import trial_step; "
            "p = json.load(open('/data/params.json')); "
            "print(json.dumps(trial_step(p, '/data/ds', '/data/split.csv', 'learned', sys.argv[1], sys.argv[2], "
            "'run-9')))")
    env = ["-e", f"AWS_ACCESS_KEY_ID={ACCESS_KEY}", "-e", f"AWS_SECRET_ACCESS_KEY={SECRET_KEY}",
           "-e", f"AWS_ENDPOINT_URL={s3.endpoint}",
           "-e", "SSLMAE_CHECKPOINT_UPLOAD_EVERY_S=0.5"]  # a tiny epoch takes ~0.2 s
    mounts = ["-v", f"{synth_dir}:/data/ds:ro", "-v", f"{split_file}:/data/split.csv:ro",
              "-v", f"{tmp_path / 'params.json'}:/data/params.json:ro", "-v", f"{outs}:/outs"]
    name = f"sslmae-test-trial-{uuid.uuid4().hex[:8]}"

    def run_args(out: str, detach: bool) -> list[str]:
        return ["run", "--rm", "--network", "host", *(["-d", "--name", name] if detach else []), *env, *mounts,
                image.tag, "python3", "-c", code, out, store.uri]

    image.engine_cmd(*run_args("/workspace/out", detach=True))  # its output folder dies with it
    remote, stored = store.child("runs/run-9/trials/learned"), tmp_path / "stored.ckpt"
    try:
        deadline = time.monotonic() + 600
        while not (remote.get("last.ckpt", stored) and torch.load(stored, weights_only=True)["epoch"] >= 1):
            state = image.engine_cmd("inspect", "--format", "{{.State.Status}}", name, check=False)
            assert state.returncode == 0 and "running" in state.stdout, "container 1 ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        image.engine_cmd("kill", name, check=False)
        image.engine_cmd("rm", "-f", name, check=False, timeout=60)
    assert remote.get("last.ckpt", stored)
    state = torch.load(stored, weights_only=True)
    (before,) = [v["rows"] for k, v in state["callbacks"].items() if "EpochHistory" in k]
    assert 1 <= len(before) < 40
    second = image.engine_cmd(*run_args("/outs/pod2", detach=False), timeout=900, check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from the stored checkpoint" in second.stdout + second.stderr
    import pandas as pd

    history = pd.read_csv(outs / "pod2" / "history.csv")
    assert list(history["epoch"]) == list(range(40))
    for row in before:
        assert history.loc[row["epoch"], "epoch_seconds"] == pytest.approx(row["epoch_seconds"])
