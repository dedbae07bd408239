"""A new user's first session, for real: a fresh clone runs the README's first-session block (read
from README.md, so the two cannot drift) in the README's order, sharing one clone as a user does;
then the orders that share state the other way round: promote twice, and `make serve` answering
while a retraining registers a new version. Each command exits 0, and the second `make run` runs
nothing. Then what DVC promises after a run: a teammate's clone pulls the whole state, the same
data elsewhere retrains nothing, a knob or a new trial reruns only what it changes, and a code
change stales exactly the stages that import it. Retraining on grown data keeps the test set
(split.frozen) and stays the same data for the gate; a new split is other data.

Data and model are shrunk in params.yaml (tests/system/test_dvc_repro.make_project); the commands
are the README's, word for word."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from sslmae.config.schema import DEFAULT_TRIALS
from sslmae.kubeflow.services import free_port
from tests.conftest import REPO
from tests.support.model_server import get, png, post, v2_body
from tests.support.readme import first_session
from tests.system.test_dvc_repro import BIN, make_project, sh, teammate_reproduces_from_a_clone

pytestmark = pytest.mark.slow
VENV = BIN.parent
TRAIN_SIDES = ("labeled", "unlabeled", "val")  # what a model learned from, or was selected on


def _clone_with_this_venv(tmp_path: Path) -> Path:
    """make_project's fresh repo, its .venv this test's installed one (make's install step sees it
    up to date, as on a user's second command)."""
    if not (VENV / ".installed").is_file():
        pytest.skip(f"{VENV} was not installed by `make install` (no .installed stamp)")
    project = make_project(tmp_path, grid={"trials": DEFAULT_TRIALS})
    (project / ".venv").symlink_to(VENV)
    os.utime(project / "pyproject.toml", (0, 0))  # older than the stamp, as after `make install`
    return project


def _env(port: int) -> dict:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", "PORT": str(port)}


def _run(command: str, cwd: Path, env: dict, timeout: float = 900) -> str:
    proc = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


class Served:
    """`make serve` as a user starts it; stopped as Kubernetes stops a pod, by SIGTERM to the server
    process (make then exits with the server's status)."""

    def __init__(self, command: str, cwd: Path, env: dict, log: Path):
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(shlex.split(command), cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 180
        while not self._ready():
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            return get(f"{self.url}/v2/health/ready", timeout=2)[0] == 200
        except OSError:  # not listening yet
            return False

    def infer(self) -> dict:
        code, body = post(f"{self.url}/v2/models/sslmae/infer", v2_body(png(32)))
        assert code == 200, body
        return body

    def stop(self) -> int:
        server = [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                  if "serve" in " ".join(p.cmdline()) and p.name() not in ("sh", "bash", "dash")]  # not make's shell
        for p in server or [psutil.Process(self.proc.pid)]:
            p.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def _kept_apart(root: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    versions = len(client.search_model_versions("name = 'sslmae'"))  # 1: the second run's weights were the same
    assert versions in (1, 2) and int(client.get_model_version_by_alias("sslmae", "champion").version) <= versions
    exp = client.get_experiment_by_name("sslmae")
    assert exp.artifact_location.startswith(str((root / "mlruns").resolve()))
    kinds = [r.data.tags["sslmae.kind"] for r in client.search_runs([exp.experiment_id])]
    assert kinds.count("promote") == 2 and "train" in kinds
    assert any((root / "mlruns").rglob("*")), "no artifact under <root>/mlruns"
    assert {p.name for p in (root / "logs").glob("*.log")} >= {"ingest.log", "select.log", "report.log"}


def _versions(project: Path) -> int:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    return len(client.search_model_versions("name = 'sslmae'"))


def test_a_new_user_runs_the_readme_commands_in_order_then_dvc_keeps_its_promises(tmp_path, s3):
    project = _clone_with_this_venv(tmp_path)
    env = _env(free_port())
    commands = first_session(REPO / "README.md")
    served = None
    runs = 0
    for command in commands:
        if command.startswith("make serve"):
            served = Served(command, project, env, tmp_path / "serve.log")
            continue
        out = _run(command, project, env)
        if command == "make run":
            runs += 1
            if runs > 1:  # the second make run reuses every stage
                assert "Running stage" not in out, out[-3000:]
    assert served is not None and runs == 2
    predictions = pd.read_csv(project / "predictions.csv")
    assert len(predictions) == 80 and predictions["error"].isna().all()
    page = (project / "report.html").read_text()
    assert "pool_images" in page and "labeled_images" in page  # make run trained with the embedded pool
    # the local Kubeflow runs kept MLflow's state in their run folder: the repository's registry has make
    # run's model only; the second run-local, of the same data, was compared with the first one's champion
    assert _versions(project) == 1
    _kept_apart(project / "runs" / "kfp-local")

    # promote twice: the champion stays, each exits 0
    for _ in range(2):
        _run(".venv/bin/sslmae promote --out promotion.json", project, env)
        decision = json.loads((project / "promotion.json").read_text())
        assert decision["name"] == "sslmae" and not decision["promoted"] and decision["champion_now"] == 1

    # scheduled retraining: new images arrive (synth.n grows) and a new version is registered while the
    # champion is served; the split is frozen, so the gate never scores a model on images it trained on
    first = pd.read_csv(project / "data/split.csv")
    trained_first = set(first.loc[first["subset"].isin(TRAIN_SIDES), "image"])
    test_first = set(first.loc[first["subset"] == "test", "image"])
    before = served.infer()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["synth"]["n"] = 100
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run("make run", project, env)
    assert "Running stage 'trial@w0.3'" in out and _versions(project) == 2
    promotion = json.loads((project / "runs/registry/promotion.json").read_text())
    assert promotion["name"] == "sslmae" and promotion["champion_version"] == 1  # grown: the same data
    assert promotion["overlap"] == {"champion": 0, "challenger": 0}
    assert served.infer()["outputs"] and before["outputs"]
    assert served.stop() == 0, served.log.read_text()[-3000:]
    second = pd.read_csv(project / "data/split.csv")
    test_second = set(second.loc[second["subset"] == "test", "image"])
    pool = second["image"].str.startswith("pool")
    assert len(second) == 140 and pool.sum() == 40 and set(second.loc[pool, "subset"]) == {"unlabeled"}
    assert not test_second & trained_first, "a trained-on image is in the new test set"
    assert test_first <= test_second, "an old test image left the test set"
    history = pd.read_csv(project / "data/split.history.csv")
    assert set(history["generation"]) == {0, 1}
    assert set(history.loc[history["generation"] == 1, "image"]) == set(second["image"]) - set(first["image"])
    assert len(list((project / "data/cache").glob("*.npy"))) == 1  # the first data's decode cache was removed

    _dvc_keeps_its_promises(project, s3, tmp_path)
    _a_new_split_is_other_data(project, env, trained_first, promotion["champion_now"])


def _a_new_split_is_other_data(project: Path, env: dict, trained_first: set, champion: int) -> None:
    """Starting over is explicit (split.frozen false, another seed): a new test set is other data, with a
    champion of its own, and the old one stays; a model trained on the old split, registered for the new
    data, would be scored on images it trained on: refused in one line unless --allow-overlap."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["split"].update(frozen=False, seed=7)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "repro", "split"], project, timeout=300)
    resplit = pd.read_csv(project / "data/split.csv")
    assert set(resplit.loc[resplit["subset"] == "test", "image"]) & trained_first
    out = _run(".venv/bin/sslmae register --model runs/selected/model.pt", project, env)
    assert "registered sslmae-" in out and "version 1" in out
    proc = subprocess.run([".venv/bin/sslmae", "promote", "--out", "p.json"], cwd=project, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "trained on" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    _run(".venv/bin/sslmae promote --out p.json --allow-overlap", project, env)
    decision = json.loads((project / "p.json").read_text())
    assert decision["name"].startswith("sslmae-") and decision["overlap"]["challenger"] > 0
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert int(client.get_model_version_by_alias("sslmae", "champion").version) == champion  # untouched


def _dvc_keeps_its_promises(project: Path, s3, tmp_path: Path) -> None:
    sh(["git", "add", "params.yaml"], project)  # the retraining's params, committed with the run's dvc.lock
    teammate_reproduces_from_a_clone(project, s3, tmp_path / "clone")
    for path in ("data/synth/labels.csv", "data/dataset/manifest.parquet", "data/split.csv",
                 "runs/grid/w0.3/model.pt", "runs/grid/w0.7/history.csv", "runs/grid/learned/model.pt",
                 "runs/grid/baseline/skipped.json", "runs/selected/model.pt", "runs/selected/trials.csv",
                 "runs/eval/metrics.json", "runs/eval/per_class.csv", "runs/registry/promotion.json",
                 "runs/report.html", "dvc.lock"):
        assert (project / path).is_file(), path
    # the MLflow store at the project root: each grid a parent with its nested trials
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("sslmae").experiment_id])
    parents = [r for r in runs if r.data.tags.get("sslmae.kind") == "grid"]
    assert len(parents) == 2
    for parent in parents:
        assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 3
    shown = json.dumps(json.loads(sh(["dvc", "metrics", "show", "--json"], project)))
    assert "runs/eval/metrics.json" in shown and "macro_auprc" in shown and "runs/selected/selected.json" in shown
    # the same data from another place: ingest reruns, its output is the same bytes, nothing retrains
    shutil.copytree(project / "data" / "synth", project / "elsewhere" / "synth")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(source="elsewhere/synth", unlabeled=["elsewhere/synth/unlabeled"])  # its pool moves with it
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    moved = sh(["dvc", "repro"], project, timeout=600)
    assert "Running stage 'ingest'" in moved
    assert not any(f"Running stage '{s}" in moved for s in ("split", "trial", "select")), moved
    # changing a training knob reruns train and evaluate only
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
    assert stale == {"trial@w0.3", "trial@w0.7", "trial@learned", "trial@baseline", "trial@w0.5", "select",
                     "evaluate", "register", "promote"}, stale
