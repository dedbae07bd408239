"""Kubeflow: the compiled pipeline YAML, the whole DAG run locally by kfp's SubprocessRunner
against a real MLflow server, and the multi-node PyTorchJob manifest and entrypoint."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from mlflow import MlflowClient

from sslmae.cli.main import main
from sslmae.kubeflow import pytorchjob
from tests.conftest import REPO


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "p.yaml"
    assert main(["pipeline", "compile", "--params", str(REPO / "params.yaml"), "--out", str(out),
                 "--parallelism", "3", "--gpus", "2"]) == 0
    docs = list(yaml.safe_load_all(out.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def loop_name(spec) -> str:
    (name,) = [k for k in spec["root"]["dag"]["tasks"] if k.startswith("for-loop")]
    return name


def test_compiled_pipeline_has_the_grid_fan_out_and_fan_in(compiled):
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    loop_key = loop_name(spec)
    (deploy,) = [k for k in tasks if k.startswith("condition")]  # deploy-champion, under the `deploy` parameter
    assert {"ingest", "split", "plan-trials", loop_key, "select", "evaluate", "register-and-promote",
            "report", deploy} == set(tasks)
    loop = tasks[loop_key]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    assert loop["parameterIterator"]["items"]["inputParameter"]
    inner = spec["components"][f"comp-{loop_key}"]["dag"]["tasks"]
    assert "train-trial" in inner
    # fan-in: select takes the collected models of the loop
    sel = tasks["select"]["inputs"]["artifacts"]["trials"]["taskOutputArtifact"]
    assert sel["producerTask"] == loop_key
    assert loop_key in tasks["select"]["dependentTasks"]
    # the params default mirrors params.yaml
    default = spec["root"]["inputDefinitions"]["parameters"]["params"]["defaultValue"]
    assert default["grid"]["trials"] == ["w0.3", "w0.7", "learned", "baseline"] and default["model"]["backbone"] == "mini"
    assert default["train"]["devices"] == 2  # the GPUs each trial requests are the GPUs it trains on


def test_train_tasks_request_gpus_shm_retries_and_caching(compiled):
    spec, platform = compiled
    execs = spec["deploymentSpec"]["executors"]
    train = execs["exec-train-trial"]["container"]
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(train["resources"]["accelerator"]["resourceCount"]) == 2
    assert train["resources"]["resourceCpuLimit"] == "8" and train["resources"]["resourceMemoryLimit"] == "32G"
    assert execs["exec-ingest"]["container"]["image"].startswith(("ghcr.io/", os.environ.get("SSLMAE_IMAGE", "x")))
    assert "pip install" not in json.dumps(execs)  # nothing installed at pod start
    inner = spec["components"][f"comp-{loop_name(spec)}"]["dag"]["tasks"]["train-trial"]
    assert inner["retryPolicy"]["maxRetryCount"] == 2
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["ingest"]["cachingOptions"] == {}  # caching off
    assert tasks["register-and-promote"]["cachingOptions"] == {}
    assert tasks["split"]["cachingOptions"] == {}  # frozen_split is state outside the DAG
    assert tasks["evaluate"]["cachingOptions"]["enableCache"] is True
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    shm = k8s["exec-train-trial"]["emptyDirMounts"][0]
    assert shm["mountPath"] == "/dev/shm" and shm["medium"] == "Memory"
    assert k8s["exec-train-trial"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    secrets = {s["secretName"] for s in k8s["exec-ingest"]["secretAsEnv"]}
    assert secrets == {"sslmae-s3"}
    # the dataset may come by reference from the store: every step that reads it gets the S3 keys
    for step in ("exec-split", "exec-train-trial", "exec-evaluate", "exec-register-and-promote", "exec-report"):
        assert "sslmae-s3" in {s["secretName"] for s in k8s[step]["secretAsEnv"]}, step
        assert any(m["mountPath"] == "/scratch" and m["sizeLimit"] for m in k8s[step]["emptyDirMounts"]), step
    assert {s["secretName"] for s in k8s["exec-register-and-promote"]["secretAsEnv"]} == {"sslmae-mlflow", "sslmae-s3"}
    assert {s["secretName"] for s in k8s["exec-report"]["secretAsEnv"]} == {"sslmae-mlflow", "sslmae-s3"}


def test_the_run_id_and_store_reach_the_trials(compiled):
    spec, _ = compiled
    assert spec["root"]["inputDefinitions"]["parameters"]["store"]["defaultValue"] == ""
    inner = spec["components"][f"comp-{loop_name(spec)}"]["dag"]["tasks"]["train-trial"]["inputs"]["parameters"]
    assert inner["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert inner["store"]["componentInputParameter"] == "pipelinechannel--store"
    select = spec["root"]["dag"]["tasks"]["select"]["inputs"]["parameters"]
    assert select["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}" and "store" in select


def test_multinode_compile_uses_the_pytorchjob_launcher(tmp_path):
    out = tmp_path / "p.yaml"
    assert main(["pipeline", "compile", "--params", str(REPO / "params.yaml"), "--out", str(out), "--nodes", "2",
                 "--gpus", "4"]) == 0
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    assert "train-trial-multinode" in spec["components"][f"comp-{loop_name(spec)}"]["dag"]["tasks"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-trial-multinode"]
    assert k8s["pvcMount"][0]["mountPath"] == "/mnt/sslmae"
    # the launcher knows its pod, the owner of the job it creates
    assert {e["name"]: e["fieldPath"] for e in k8s["fieldPathAsEnv"]} == {
        "POD_NAME": "metadata.name", "POD_UID": "metadata.uid", "POD_NAMESPACE": "metadata.namespace"}
    # select removes the run's staging folder from the claim
    select = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-select"]
    assert select["pvcMount"][0]["mountPath"] == "/mnt/sslmae"
    assert spec["root"]["dag"]["tasks"]["select"]["inputs"]["parameters"]["claim"]["runtimeValue"]["constant"] \
        == "/mnt/sslmae"


def test_pytorchjob_manifest():
    spec = pytorchjob.JobSpec(name="j1", namespace="ml", image="img:1", nodes=3, gpus=4, pvc="claim", run_dir="r1")
    m = pytorchjob.render(spec)
    assert m["kind"] == "PyTorchJob" and m["apiVersion"] == "kubeflow.org/v1"
    reps = m["spec"]["pytorchReplicaSpecs"]
    assert reps["Master"]["replicas"] == 1 and reps["Worker"]["replicas"] == 2
    c = reps["Worker"]["template"]["spec"]["containers"][0]
    assert c["name"] == "pytorch" and c["resources"]["limits"]["nvidia.com/gpu"] == 4
    cmd = c["command"][2]
    for part in ("torchrun", "--nnodes=3", "--nproc_per_node=4", '--node_rank="$RANK"', '--master_addr="$MASTER_ADDR"',
                 "train.devices=4", "train.num_nodes=3", "/mnt/sslmae/r1/params.yaml"):
        assert part in cmd, part
    vols = {v["name"]: v for v in reps["Master"]["template"]["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "claim" and vols["dshm"]["emptyDir"]["medium"] == "Memory"
    assert "Worker" not in pytorchjob.render(pytorchjob.JobSpec("j", "n", "i", 1, 1, "c", "r"))["spec"]["pytorchReplicaSpecs"]
    with pytest.raises(ValueError):
        pytorchjob.render(pytorchjob.JobSpec("j", "n", "i", 0, 1, "c", "r"))


def test_pytorchjob_status():
    assert pytorchjob.outcome(None)[0] == "running"
    running = {"conditions": [{"type": "Created", "status": "True", "message": "created"},
                              {"type": "Running", "status": "True", "message": "running"}]}
    assert pytorchjob.outcome(running) == ("running", "running")
    failed = {"conditions": running["conditions"] + [
        {"type": "Failed", "status": "True", "reason": "OOMKilled", "message": "worker-0 exited 137"}]}
    assert pytorchjob.outcome(failed) == ("failed", "OOMKilled: worker-0 exited 137")
    ok = {"conditions": running["conditions"] + [{"type": "Succeeded", "status": "True", "message": "done"}]}
    assert pytorchjob.outcome(ok) == ("succeeded", "done")


@pytest.mark.slow
def test_entrypoint_runs_two_nodes_from_the_operator_environment(tmp_path, synth_dir, split_file):
    """What each PyTorchJob pod runs, with the environment the operator sets (RANK = pod index)."""
    import shutil

    from sslmae.config import load_config, to_dict
    from tests.conftest import tiny_overrides

    run = tmp_path / "claim" / "r1"
    run.mkdir(parents=True)
    shutil.copytree(synth_dir, run / "dataset")
    shutil.copyfile(split_file, run / "split.csv")
    cfg = load_config(None, tiny_overrides(tmp_path, synth_dir, split_file))
    (run / "params.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    spec = pytorchjob.JobSpec("j", "ns", "img", nodes=2, gpus=1, pvc="c", run_dir="r1", mount=str(tmp_path / "claim"))
    cmd = pytorchjob.render(spec)["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK",)}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
               PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    pods = [subprocess.Popen(cmd, env={**env, "RANK": str(r)}, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in pods]
    assert all(p.returncode == 0 for p in pods), outs[0][-2000:] + outs[1][-2000:]
    assert (run / "out" / "model.pt").is_file()
    assert torch.load(run / "out" / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_run_local_executes_the_whole_dag_and_registers_a_champion(tmp_path, mlflow_server, monkeypatch):
    """On the 12-band synthetic set, by params alone (synth.bands=12; data.bands auto takes all 12): the RGB
    DAG runs in the newcomer's test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    exp, model = f"kfp-{tmp_path.name}", f"kfp-model-{tmp_path.name}"
    assert main(["pipeline", "run-local", "--params", str(REPO / "params.yaml"), "--root", str(tmp_path / "kfp"),
                 f"tracking.experiment={exp}", f"tracking.registered_model={model}", "grid.trials=[w0.3, learned]",
                 "synth.bands=12"]) == 0
    client = MlflowClient(tracking_uri=mlflow_server)
    assert int(client.get_model_version_by_alias(model, "champion").version) == 1
    runs = client.search_runs([client.get_experiment_by_name(exp).experiment_id])
    kinds = sorted(r.data.tags["sslmae.kind"] for r in runs)
    assert kinds.count("train") == 2 and "grid" in kinds and "promote" in kinds  # fan-out and fan-in ran
    trained = [r.data.tags for r in runs if r.data.tags["sslmae.kind"] == "train"]
    assert all(t["sslmae.data.pool"] == "48" for t in trained), trained  # the embedded pool, synth.unlabeled=48
    assert all(t["sslmae.bands"].startswith("B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B12 (uint16, all)")
               for t in trained), trained
    reports = list((tmp_path / "kfp").rglob("page"))
    assert reports and "<html" in reports[0].read_text()[:200].lower()
    bands = reports[0].read_text().split('<section id="bands">')[1]  # the 12 bands, their statistics, sample tiles
    assert "<td>B8A</td>" in bands and bands.count("data:image/png;base64,") == 2


def test_the_pipeline_takes_unlabeled_sources_as_an_input(compiled, tmp_path):
    """`unlabeled` (a list) travels with `source`; the ingest step takes the pool given with its source,
    and none from params when a source is given without one (params' pool belongs to params' source)."""
    from sslmae.config import Config, to_dict
    from sslmae.datasets.synth import POOL, write_synthetic
    from sslmae.kubeflow.steps import ingest_step

    spec, _ = compiled
    assert spec["root"]["inputDefinitions"]["parameters"]["unlabeled"]["parameterType"] == "LIST"
    synth = write_synthetic(tmp_path / "synth", n=30, size=16, unlabeled=6)
    params = to_dict(Config())
    params["data"]["unlabeled"] = ["data/synth/unlabeled"]  # params' own pool: not on this machine
    with_pool = ingest_step(params, str(synth), str(tmp_path / "a"), unlabeled=[str(synth / POOL)])
    assert with_pool["n_pool"] == 6 and with_pool["n_images"] == 36
    alone = ingest_step(params, str(synth), str(tmp_path / "b"))
    assert "n_pool" not in alone and alone["n_images"] == 30


def _grown_datasets(tmp_path):
    from sslmae.datasets.synth import write_synthetic

    return (write_synthetic(tmp_path / "old", n=60, size=16, seed=0),
            write_synthetic(tmp_path / "new", n=100, size=16, seed=0))  # the same 60 + 40 new


def _sides(path):
    import pandas as pd

    t = pd.read_csv(path)
    return dict(zip(t["image"], t["subset"].replace({"labeled": "train", "unlabeled": "train"})))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_frozen_split_survives_a_retraining_on_grown_data(tmp_path, where, request):
    from sslmae.config import Config, to_dict
    from sslmae.kubeflow.steps import split_step

    params = to_dict(Config())
    if where == "s3":
        s3 = request.getfixturevalue("s3")
        request.getfixturevalue("monkeypatch").setenv("AWS_ENDPOINT_URL", s3.endpoint)
        frozen = f"s3://{s3.bucket}/state/split.csv"
    else:
        frozen = str(tmp_path / "state" / "split.csv")
    old, new = _grown_datasets(tmp_path)
    first = split_step(params, str(old), str(tmp_path / "s1.csv"), frozen)
    assert first["kept_from_earlier"] is False
    second = split_step(params, str(new), str(tmp_path / "s2.csv"), frozen)
    assert second["kept_from_earlier"] is True
    assert second["data_key"] == first["data_key"]  # grown under the frozen split: the same data for the gate
    before, after = _sides(tmp_path / "s1.csv"), _sides(tmp_path / "s2.csv")
    assert all(after[i] == side for i, side in before.items()) and len(after) == 100
