"""A registered version is an MLflow Model: pyfunc loads it without unpickling anything and answers
what `sslmae predict` answers; `mlflow models serve` serves it (a real server process); versions
registered before sslmae logged MLflow Models (a bare model.pt) still work with `sslmae predict`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sslmae.config import load_config
from sslmae.config.schema import TrackingConfig
from sslmae.kubeflow.services import free_port
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.predict import predict
from sslmae.tracking.mlflow_model import log_mlflow_model
from sslmae.train.model_file import save_model
from tests.support.model_server import b64, get, png, post

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def registered(mlflow_server, tmp_path_factory):
    """(tracking URI, registered name, the model file, a folder of 3 images)."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlmodel")
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             "data.img_size=32"])
    net = SimMIMSSLMAE(num_classes=3, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8)
    model_file = save_model(folder / "model.pt", net, cfg, LABELS, thresholds=[0.5, 0.45, 0.55])
    (folder / "in").mkdir()
    for i in range(3):
        (folder / "in" / f"{i}.png").write_bytes(png(48, i))
    client = mlflow.MlflowClient(mlflow_server)
    run = client.create_run(client.create_experiment("mlflow-model"))
    model_id = log_mlflow_model(TrackingConfig(enabled=True, uri=mlflow_server), run.info.run_id, model_file,
                                LABELS, 32)
    client.create_registered_model("mlmodel")
    version = client.create_model_version("mlmodel", f"models:/{model_id}", run.info.run_id, model_id=model_id)
    client.set_registered_model_alias("mlmodel", "champion", version.version)
    return mlflow_server, "mlmodel", model_file, folder / "in"


def _offline(model_file, images: Path, tmp_path) -> pd.DataFrame:
    return predict(str(model_file), str(images), tmp_path / "p.csv", log=lambda m: None)


def test_pyfunc_loads_without_pickles_and_answers_what_predict_answers(registered, tmp_path, monkeypatch):
    import mlflow

    uri, name, model_file, images = registered
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    files = sorted(images.iterdir())
    got = model.predict(pd.DataFrame({"image": [f.read_bytes() for f in files]}))
    want = _offline(model_file, images, tmp_path)
    cols = [f"prob_{n}" for n in LABELS]
    np.testing.assert_allclose(got[cols].to_numpy(), want[cols].to_numpy(), atol=1e-5)
    assert list(got["predicted"]) == list(want["predicted"].fillna(""))

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(tmp_path / "dl")))
    meta = yaml.safe_load((local / "MLmodel").read_text())
    assert meta["signature"]["inputs"] == '[{"type": "binary", "name": "image", "required": true}]'
    assert (local / "input_example.json").is_file() and (local / "artifacts" / "model.pt").is_file()
    reqs = (local / "requirements.txt").read_text().split()
    assert "torch==2.14.1" in reqs and "timm==1.0.31" in reqs and "mlflow==3.17.2" in reqs
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]


def test_mlflow_models_serve_answers_invocations_with_base64_images(registered, tmp_path):
    uri, name, model_file, images = registered
    port = free_port()
    exe = str(Path(sys.executable).parent / "mlflow")
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([exe, "models", "serve", "-m", f"models:/{name}@champion", "--env-manager", "local",
                                 "-h", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ, MLFLOW_TRACKING_URI=uri,
                                                                 MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false"))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        files = sorted(images.iterdir())
        body = {"dataframe_split": {"columns": ["image"], "data": [[b64(f.read_bytes())] for f in files]}}
        status, answer = post(f"http://127.0.0.1:{port}/invocations", body)
        assert status == 200, answer
        got = pd.DataFrame(answer["predictions"])
        want = _offline(model_file, images, tmp_path)
        cols = [f"prob_{n}" for n in LABELS]
        np.testing.assert_allclose(got[cols].to_numpy(), want[cols].to_numpy(), atol=1e-5)
        status, answer = post(f"http://127.0.0.1:{port}/invocations",
                              {"dataframe_split": {"columns": ["image"], "data": [[b64(b"not an image")]]}})
        assert status == 400 and "not an image" in str(answer), answer
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_version_registered_as_a_bare_model_file_still_predicts(registered, tmp_path):
    import mlflow

    uri, _, model_file, images = registered
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.get_experiment_by_name("mlflow-model").experiment_id)
    client.log_artifact(run.info.run_id, str(model_file), artifact_path="model")  # how sslmae registered before
    client.create_registered_model("bare")
    client.create_model_version("bare", f"{run.info.artifact_uri}/model", run.info.run_id)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    done = subprocess.run([sys.executable, "-m", "sslmae.cli", "predict", "--model", "models:/bare/1", "--input",
                           str(images), "--out", str(tmp_path / "old.csv"), "tracking.enabled=true",
                           f"tracking.uri={uri}"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    want = _offline(model_file, images, tmp_path)
    got = pd.read_csv(tmp_path / "old.csv")
    np.testing.assert_allclose(got[[f"prob_{n}" for n in LABELS]].to_numpy(),
                               want[[f"prob_{n}" for n in LABELS]].to_numpy(), atol=1e-5)
