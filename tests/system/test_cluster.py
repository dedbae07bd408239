"""Behaviour on a real cluster, tested against what is available here: the upstream CRD schemas
(tests/support/crds/), kfp's own client against a stand-in KFP API server (tests/support/kfp_fake.py), stand-ins
for the Kubernetes APIs that record every call (tests/support/k8s_fake.py), a real S3 (SeaweedFS) for the
store, and a real training process killed mid-run. What only a cluster can show is listed in
docs/kubeflow.md."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sslmae.cli.main import main
from sslmae.config import load_config, to_dict
from sslmae.kubeflow import dataref, k8sjob, multinode, pytorchjob, trainjob
from sslmae.kubeflow.checkpoints import TrialCheckpoints
from sslmae.kubeflow.schedule import check_cron
from sslmae.kubeflow.steps import ingest_step
from sslmae.datasets.store import Store
from tests.conftest import REPO, tiny_overrides
from tests.support.crd_schema import errors
from tests.support.k8s_fake import RUNNING, FakeCoreV1, FakeCustomObjects, finished, pod
from tests.support.kfp_fake import FakeKFP, serve

V1_CRD, V2_CRD = "kubeflow.org_pytorchjobs.yaml", "trainer.kubeflow.org_trainjobs.yaml"
RENDER = {"v1": (pytorchjob.render, V1_CRD), "v2": (trainjob.render, V2_CRD)}
OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "launcher-abc", "uid": "1234-uid", "controller": False,
         "blockOwnerDeletion": False}


def spec(nodes: int = 3, gpus: int = 4, **kw) -> pytorchjob.JobSpec:
    fields = dict(name=k8sjob.job_name("run-1", "w0.3"), namespace="team-a", image="reg/sslmae:1", nodes=nodes,
                  gpus=gpus, pvc="sslmae-data", run_dir="runs/run-1/w0.3", dataset_dir="runs/run-1/dataset",
                  trial="w0.3", owner=OWNER)
    fields.update(kw)
    return pytorchjob.JobSpec(**fields)


def pod_templates(manifest: dict) -> list[dict]:
    if manifest["kind"] == "PyTorchJob":
        return [r["template"] for r in manifest["spec"]["pytorchReplicaSpecs"].values()]
    patch = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    return [j["template"]["spec"]["template"] for j in patch["replicatedJobs"]]


# ------------------------------------------------------------------ manifests against the CRDs

@pytest.mark.parametrize("trainer", ["v1", "v2"])
@pytest.mark.parametrize("nodes", [1, 3])
def test_manifests_validate_against_the_upstream_crds(trainer, nodes):
    render, crd = RENDER[trainer]
    m = render(spec(nodes=nodes, queue="ml", priority_class="high", node_selector={"gpu": "h100"}))
    assert errors(m, crd) == []
    assert m["metadata"]["ownerReferences"] == [OWNER] and m["metadata"]["namespace"] == "team-a"
    for template in pod_templates(m):  # multi-user Kubeflow: no Istio sidecar, or the pods never finish
        assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    res = (m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["resources"]
           if trainer == "v1" else m["spec"]["trainer"]["resourcesPerNode"])
    assert res["requests"]["ephemeral-storage"] == res["limits"]["ephemeral-storage"] == "20Gi"
    assert res["limits"]["nvidia.com/gpu"] == 4
    if trainer == "v1":
        run_policy = m["spec"]["runPolicy"]
        assert run_policy["schedulingPolicy"] == {"minAvailable": nodes, "queue": "ml", "priorityClass": "high"}
        assert run_policy["activeDeadlineSeconds"] == 7 * 24 * 3600
        assert len(m["spec"]["pytorchReplicaSpecs"]) == (2 if nodes > 1 else 1)
    else:
        assert m["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                           "name": "torch-distributed"}
        assert m["spec"]["trainer"]["numNodes"] == nodes and m["spec"]["trainer"]["numProcPerNode"] == 4
        command = m["spec"]["trainer"]["command"][2]
        assert command.startswith("torchrun -m sslmae.cli train") and "--node_rank" not in command  # PET_* env
        assert "data.dir=/mnt/sslmae/runs/run-1/dataset" in command


@pytest.mark.parametrize("trainer", ["v1", "v2"])
def test_the_schema_check_is_strict(trainer):
    """A misspelt or misplaced field fails (the API server would prune it silently without strict
    field validation, which the launcher requests)."""
    render, crd = RENDER[trainer]
    m = render(spec())
    if trainer == "v1":
        m["spec"]["runPolicy"]["schedulingPolicy"]["minAvaliable"] = 3
    else:
        m["spec"]["trainer"]["numProcsPerNode"] = 4
    assert len(errors(m, crd)) == 1
    m = render(spec(name="Sslmae_W0.3"))
    assert any("DNS-1035" in e for e in errors(m, crd))


def test_gang_scheduling_can_be_turned_off():
    assert "schedulingPolicy" not in pytorchjob.render(spec(gang=False))["spec"]["runPolicy"]


def test_job_name_is_fixed_per_run_and_trial():
    name = k8sjob.job_name("8d2f-run", "w0.3")
    assert name == k8sjob.job_name("8d2f-run", "w0.3") != k8sjob.job_name("8d2f-run", "w0.7")
    assert name != k8sjob.job_name("other-run", "w0.3")
    long = k8sjob.job_name("r" * 200, "Learned_With.A-Very-Long-Trial-Name-" * 3)
    for n in (name, long):
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63, n


# ------------------------------------------------------------------ the job's life (fake Kubernetes API)

def job(custom, core=None, logs=None, timeout_s=60.0):
    lines = [] if logs is None else logs
    return k8sjob.Job(pytorchjob.render(spec()), pytorchjob.KIND, custom, core, log=lines.append), lines


def master_and_worker(master_phase="Running", worker_phase="Running", worker_exit=None):
    return [pod("j-master-0", {"training.kubeflow.org/replica-type": "master"}, master_phase),
            pod("j-worker-0", {"training.kubeflow.org/replica-type": "worker"}, worker_phase, worker_exit)]


def test_a_job_that_succeeds_streams_rank_0_log_and_is_deleted():
    statuses = [RUNNING, RUNNING, finished("Succeeded", "done")]
    custom = FakeCustomObjects(on_get=lambda j, n: j.update(status=statuses[min(n, len(statuses)) - 1]))
    core = FakeCoreV1(master_and_worker(), {"j-master-0": "epoch 0\nepoch 1\n", "j-worker-0": "worker noise\n"})
    j, lines = job(custom, core)
    assert j.run(timeout_s=60, poll_s=0.01) == "done"
    assert custom.verbs() == ["create", "delete"]
    create = custom.calls[0]
    assert create[3] == {"field_validation": "Strict"}
    assert custom.objects == {}
    assert "[j-master-0] epoch 0" in lines and "[j-master-0] epoch 1" in lines
    assert not any("worker noise" in x for x in lines)  # rank 0 only while it runs
    assert ("list", "team-a", f"training.kubeflow.org/job-name={j.name}") in core.calls


def test_a_failed_job_raises_its_reason_shows_failed_pods_and_is_deleted():
    statuses = [RUNNING, finished("Failed", "worker-0 exited 137", "OOMKilled")]
    custom = FakeCustomObjects(on_get=lambda j, n: j.update(status=statuses[min(n, 2) - 1]))
    core = FakeCoreV1(master_and_worker(worker_phase="Failed", worker_exit=137),
                      {"j-worker-0": "\n".join(f"line {i}" for i in range(80)) + "\nKilled"})
    j, lines = job(custom, core)
    with pytest.raises(RuntimeError, match="failed: OOMKilled: worker-0 exited 137"):
        j.run(timeout_s=60, poll_s=0.01)
    assert custom.verbs() == ["create", "delete"]
    assert "[j-worker-0] Killed" in lines and "[j-worker-0] line 29" not in lines  # the last 50 lines
    assert ("log", "j-worker-0", "pytorch", False, 50) in core.calls


def test_a_job_past_its_timeout_is_deleted():
    custom = FakeCustomObjects(on_get=lambda j, n: j.update(status=RUNNING))
    j, _ = job(custom, FakeCoreV1())
    with pytest.raises(TimeoutError, match="still running"):
        j.run(timeout_s=0.05, poll_s=0.01)
    assert custom.verbs() == ["create", "delete"] and custom.objects == {}


def test_sigterm_to_the_launcher_deletes_the_job():
    """What a terminated KFP run or an evicted launcher pod does: SIGTERM to the launcher."""
    def on_get(j, n):
        j.update(status=RUNNING)
        if n == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    custom = FakeCustomObjects(on_get=on_get)
    j, lines = job(custom, FakeCoreV1())
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(k8sjob.JobInterrupted):
        j.run(timeout_s=60, poll_s=0.01)
    assert custom.verbs() == ["create", "delete"] and custom.objects == {}
    assert any("SIGTERM" in x for x in lines)
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_retried_launcher_adopts_the_running_job_and_becomes_its_owner():
    custom = FakeCustomObjects()
    first = pytorchjob.render(spec(owner={**OWNER, "name": "launcher-try1", "uid": "uid-try1"}))
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "team-a", "pytorchjobs", first)
    custom.calls.clear()
    statuses = [RUNNING, finished("Succeeded", "done")]
    custom.on_get = lambda j, n: j.update(status=statuses[min(n, 2) - 1])
    j, lines = job(custom, FakeCoreV1())  # the second try: owner launcher-abc
    assert j.run(timeout_s=60, poll_s=0.01) == "done"
    assert custom.verbs() == ["create", "patch", "delete"]  # create -> 409, adopt, delete when done
    (patch,) = [c for c in custom.calls if c[0] == "patch"]
    assert patch[3] == {"metadata": {"ownerReferences": [OWNER]}}
    assert any("adopted" in x for x in lines)


def test_a_retried_launcher_replaces_a_failed_job():
    custom = FakeCustomObjects()
    earlier = pytorchjob.render(spec())
    earlier["status"] = finished("Failed", "node lost")
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "team-a", "pytorchjobs", earlier)
    custom.calls.clear()
    custom.on_create = lambda j: j.update(status=finished("Succeeded", "done"))
    j, lines = job(custom, FakeCoreV1())
    assert j.run(timeout_s=60, poll_s=0.01) == "done"
    assert custom.verbs() == ["create", "delete", "create", "delete"]
    assert any("replacing" in x for x in lines)


def test_a_job_of_that_name_not_made_by_sslmae_is_left_alone():
    custom = FakeCustomObjects()
    foreign = pytorchjob.render(spec())
    foreign["metadata"]["labels"] = {}
    custom.create_namespaced_custom_object("kubeflow.org", "v1", "team-a", "pytorchjobs", foreign)
    j, _ = job(custom, FakeCoreV1())
    with pytest.raises(ValueError, match="not made by sslmae"):
        j.run(timeout_s=60, poll_s=0.01)
    assert "delete" not in custom.verbs() and len(custom.objects) == 1


@pytest.mark.parametrize("status, says", [(403, "may not create it"), (404, "is its operator installed")])
def test_a_refused_creation_says_why_in_one_line(status, says):
    from kubernetes.client.exceptions import ApiException

    class Refusing(FakeCustomObjects):
        def create_namespaced_custom_object(self, *args, **kwargs):
            self.calls.append(("create",))
            raise ApiException(status=status, reason="Forbidden" if status == 403 else "Not Found")

    custom = Refusing()
    j, _ = job(custom, FakeCoreV1())
    with pytest.raises(RuntimeError, match=says) as info:
        j.run(timeout_s=60, poll_s=0.01)
    assert "\n" not in str(info.value) and custom.verbs() == ["create"]


def test_trainjob_status_and_pods():
    assert trainjob.outcome(finished("Complete", "ok")) == ("succeeded", "ok")
    assert trainjob.outcome(finished("Failed", "boom", "JobFailed")) == ("failed", "JobFailed: boom")
    assert trainjob.KIND.pod_selector("x") == "jobset.sigs.k8s.io/jobset-name=x"
    assert trainjob.KIND.is_primary({"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                     "batch.kubernetes.io/job-completion-index": "0"})
    assert not trainjob.KIND.is_primary({"jobset.sigs.k8s.io/replicatedjob-name": "node",
                                         "batch.kubernetes.io/job-completion-index": "1"})


@pytest.mark.parametrize("trainer", ["v1", "v2"])
def test_multinode_trial_stages_per_run_names_the_job_per_trial_and_cleans_up(trainer, tmp_path, synth_dir,
                                                                                 split_file, monkeypatch):
    """The launcher's whole step against the fake API: the job's namespace and owner come from the
    pod's downward-API variables, the dataset is staged once per run on the claim, the model
    (without checkpoints) is copied back, and select's cleanup removes the run's folder."""
    from sslmae.kubeflow.steps import multinode_trial_step

    monkeypatch.setenv("POD_NAME", "launcher-xyz")
    monkeypatch.setenv("POD_UID", "uid-xyz")
    monkeypatch.setenv("POD_NAMESPACE", "team-b")
    claim = tmp_path / "claim"
    seen = []

    def operator(job):  # plays the job: checks the manifest, writes what `sslmae train` writes
        seen.append(job)
        crd = V1_CRD if job["kind"] == "PyTorchJob" else V2_CRD
        assert errors(job, crd) == []
        out = claim / f"runs/run-7/{job['metadata']['labels']['sslmae.org/trial']}/out"
        (out / "checkpoints").mkdir(parents=True)
        (out / "checkpoints" / "last.ckpt").write_bytes(b"x")
        (out / "model.pt").write_bytes(b"model")
        (out / "metrics.json").write_text(json.dumps({"val_macro_auprc": 0.5}))
        job["status"] = finished("Succeeded" if job["kind"] == "PyTorchJob" else "Complete", "ok")

    custom = FakeCustomObjects(on_create=operator)
    params = to_dict(load_config(None, tiny_overrides(tmp_path, synth_dir, split_file)))
    job_fields = {"trainer": trainer, "image": "reg/sslmae:1", "nodes": 2, "gpus": 1, "pvc": "sslmae-data",
                  "mount": str(claim)}
    for trial in ("w0.3", "learned"):
        out = tmp_path / f"model-{trial}"
        got = multinode_trial_step(params, str(synth_dir), str(split_file), trial, str(out), job_fields, "run-7",
                                   apis=(custom, FakeCoreV1()), poll_s=0.01)
        assert got == {"val_macro_auprc": 0.5}
        assert (out / "model.pt").read_bytes() == b"model" and not (out / "checkpoints").exists()
        assert json.loads((out / "trial.json").read_text()) == {"trial": trial}
    assert [j["metadata"]["namespace"] for j in seen] == ["team-b", "team-b"]
    assert all(j["metadata"]["ownerReferences"][0]["uid"] == "uid-xyz" for j in seen)
    assert {j["metadata"]["name"] for j in seen} == {k8sjob.job_name("run-7", "w0.3"), k8sjob.job_name("run-7", "learned")}
    staged = claim / "runs/run-7"
    assert sorted(p.name for p in staged.iterdir()) == ["dataset", "learned", "w0.3"]  # one dataset for the run
    assert yaml.safe_load((staged / "w0.3" / "params.yaml").read_text())["loss"]["w"] == 0.3
    assert custom.objects == {}  # both jobs deleted
    multinode.remove_run(claim, "run-7")
    assert not staged.exists()


def test_multinode_pods_stream_a_shard_dataset_with_no_copy_on_the_claim(tmp_path, split_file, monkeypatch):
    """A referenced shard dataset is not staged on the claim: every pod of the job gets its URI as
    data.dir and the store's keys (secret sslmae-s3); only the split and params are staged."""
    from sslmae.kubeflow.steps import multinode_trial_step

    monkeypatch.setenv("POD_NAME", "launcher-xyz")
    monkeypatch.setenv("POD_UID", "uid-xyz")
    claim, seen = tmp_path / "claim", []
    uri = "s3://bucket/sslmae/datasets/" + "ab" * 32
    dataref.write_reference(tmp_path / "dataset", {"uri": uri, "digest": "ab" * 32, "format": "shards",
                                                   "images": 96, "bytes": 1})

    def operator(job):
        seen.append(job)
        assert errors(job, V1_CRD) == []
        out = claim / "runs/run-8/w0.3/out"
        out.mkdir(parents=True)
        (out / "model.pt").write_bytes(b"model")
        (out / "metrics.json").write_text(json.dumps({"val_macro_auprc": 0.5}))
        job["status"] = finished("Succeeded", "ok")

    params = to_dict(load_config(None, tiny_overrides(tmp_path, tmp_path / "dataset", split_file)))
    multinode_trial_step(params, str(tmp_path / "dataset"), str(split_file), "w0.3", str(tmp_path / "model"),
                         {"trainer": "v1", "image": "reg/sslmae:1", "nodes": 2, "gpus": 1, "pvc": "sslmae-data",
                          "mount": str(claim)}, "run-8", apis=(FakeCustomObjects(on_create=operator), FakeCoreV1()),
                         poll_s=0.01)
    assert not (claim / "runs/run-8/dataset").exists()
    for template in pod_templates(seen[0]):
        container = template["spec"]["containers"][0]
        assert f"data.dir={uri}" in container["command"][-1]
        assert {"secretRef": {"name": "sslmae-s3", "optional": True}} in container["envFrom"]


# ------------------------------------------------------------------ schedules and submissions (kfp client)

@pytest.fixture
def kfp_server():
    fake, stop = serve(FakeKFP())
    yield fake
    stop()


def _schedule(fake, *extra, cron="0 0 3 * * *"):
    return main(["pipeline", "schedule", "--host", fake.host, "--cron", cron, "--source", "s3://bucket/incoming",
                 "--params", str(REPO / "params.yaml"), "--image", "reg/sslmae:1", *extra])


@pytest.mark.parametrize("cron", ["0 3 * * *", "0 0 3 * *", "", "0 0 3 * * * *", "0 0 3 * * mon;"])
def test_a_cron_kfp_would_misread_is_refused_in_one_line_before_any_request(cron, kfp_server, capsys, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _schedule(kfp_server, "--out", str(tmp_path / "p.yaml"), cron=cron) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--cron" in err, err
    if cron == "0 3 * * *":
        assert "5 fields" in err and "'0 0 3 * * *'" in err
    assert kfp_server.requests == [] and not (tmp_path / "p.yaml").exists()


def test_cron_forms_kfp_reads():
    for cron in ("0 0 3 * * *", "0 30 2 * * MON-FRI", "0 0 */6 ? * *", "@daily", "@every 1h30m"):
        assert check_cron(cron) == cron


def test_schedule_twice_keeps_one_recurring_run_and_versions_the_pipeline(kfp_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _schedule(kfp_server, "--out", str(tmp_path / "p.yaml")) == 0
    (first,) = kfp_server.recurring
    kfp_server.requests.clear()
    assert _schedule(kfp_server, "--out", str(tmp_path / "p.yaml"), cron="0 0 4 * * *") == 0
    (second,) = kfp_server.recurring  # the first is gone
    assert second != first
    calls = [(m, p.split("/apis/v2beta1")[1]) for m, p, _, _ in kfp_server.requests if m != "GET"]
    assert calls == [("POST", "/pipelines/upload_version"), ("POST", f"/recurringruns/{first}:disable"),
                     ("POST", "/recurringruns"), ("DELETE", f"/recurringruns/{first}")]
    (pipeline_id,) = kfp_server.pipelines
    versions = kfp_server.versions[pipeline_id]
    assert len(versions) == 2 and re.fullmatch(r"sslmae-training-\d{8}-\d{6}-[0-9a-f]{8}", versions[1]["display_name"])
    run = kfp_server.recurring[second]
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline_id,
                                                 "pipeline_version_id": versions[1]["pipeline_version_id"]}
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * *"
    assert run["max_concurrency"] == "1" or run["max_concurrency"] == 1
    assert run["no_catchup"] is True and run["display_name"] == "sslmae-retrain"
    assert run["runtime_config"]["parameters"]["source"] == "s3://bucket/incoming"


def test_a_failed_replacement_leaves_the_old_schedule_enabled(kfp_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _schedule(kfp_server, "--out", str(tmp_path / "p.yaml")) == 0
    (first,) = kfp_server.recurring
    handle = kfp_server.handle
    kfp_server.handle = lambda m, p, q, b: (500, {"error": "boom"}) if (m, p) == ("POST", "/apis/v2beta1/recurringruns") \
        else handle(m, p, q, b)
    from kfp_server_api.exceptions import ApiException

    with pytest.raises(ApiException):
        _schedule(kfp_server, "--out", str(tmp_path / "p.yaml"))
    assert list(kfp_server.recurring) == [first] and kfp_server.recurring[first]["status"] == "ENABLED"


def test_multi_user_needs_a_namespace_and_uses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KFP_NAMESPACE", raising=False)
    fake, stop = serve(FakeKFP(multi_user=True))
    try:
        args = ["pipeline", "submit", "--host", fake.host, "--source", "s3://bucket/x", "--image", "reg/sslmae:1",
                "--params", str(REPO / "params.yaml")]
        assert main(args) == 2
        assert "pass --namespace" in capsys.readouterr().err
        assert all(p.endswith("/healthz") for _, p, _, _ in fake.requests)
        assert main(args + ["--namespace", "team-a", "--store", "s3://bucket/work"]) == 0
        (exp,) = fake.experiments.values()
        assert exp["namespace"] == "team-a"
        assert ("GET", "/apis/v2beta1/experiments") in [(m, p) for m, p, _, _ in fake.requests]
        assert [q.get("namespace") for m, p, q, _ in fake.requests if p.endswith("/experiments") and m == "GET"] \
            == ["team-a"]
        (run,) = fake.runs.values()
        assert run["experiment_id"] == exp["experiment_id"]
        assert run["runtime_config"]["parameters"]["store"] == "s3://bucket/work"
        images = {e["container"]["image"] for e in run["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"].values()}
        assert images == {"reg/sslmae:1"}
    finally:
        stop()


def test_an_empty_source_is_refused_before_any_request(kfp_server, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "submit", "--host", kfp_server.host, "--image", "reg/sslmae:1",
                 "--params", str(REPO / "params.yaml")]) == 2
    err = capsys.readouterr().err
    assert "--source is empty" in err and "data/synth" in err and len(err.strip().splitlines()) == 1
    assert kfp_server.requests == []


def test_ingest_in_a_pod_refuses_an_empty_source(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "synth").mkdir(parents=True)  # even where a data/synth happens to exist
    with pytest.raises(ValueError, match="source=s3://bucket/prefix"):
        ingest_step(to_dict(load_config(None)), "", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the image name

def test_compile_sets_the_image_on_every_task_and_warns_about_the_placeholder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SSLMAE_IMAGE", raising=False)
    out = tmp_path / "p.yaml"
    for extra in ([], ["--nodes", "2", "--trainer", "v2"]):
        assert main(["pipeline", "compile", "--params", str(REPO / "params.yaml"), "--out", str(out),
                     "--image", "reg.example/sslmae:2", *extra]) == 0
        assert "placeholder" not in capsys.readouterr().err
        spec_, _ = yaml.safe_load_all(out.read_text())
        assert {e["container"]["image"] for e in spec_["deploymentSpec"]["executors"].values()} \
            == {"reg.example/sslmae:2"}
    loop = [t for t in spec_["root"]["dag"]["tasks"] if t.startswith("for-loop")][0]
    job_ = spec_["components"][f"comp-{loop}"]["dag"]["tasks"]["train-trial-multinode"]["inputs"]["parameters"]["job"]
    assert job_["runtimeValue"]["constant"]["image"] == "reg.example/sslmae:2"  # the job's pods too
    assert job_["runtimeValue"]["constant"]["trainer"] == "v2"
    import components

    if components.IMAGE == components.PLACEHOLDER:  # SSLMAE_IMAGE was unset when components was imported
        assert main(["pipeline", "compile", "--params", str(REPO / "params.yaml"), "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "ghcr.io/sslmae/sslmae:0.1.0 is a placeholder" in err and "--image" in err


# ------------------------------------------------------------------ the store: dataset by reference, checkpoints

@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(str(tmp_path / "claim" / "sslmae"))
    s3 = request.getfixturevalue("s3")
    request.getfixturevalue("monkeypatch").setenv("AWS_ENDPOINT_URL", s3.endpoint)
    return Store(f"s3://{s3.bucket}/sslmae")


def test_the_dataset_travels_by_reference_and_is_checked(store, tmp_path, synth_dir):
    from sslmae.datasets.ingest import ingest

    ds = ingest(str(synth_dir), tmp_path / "canonical", log=lambda *_: None).out
    logs = []
    ref = dataref.publish(ds, store, log=logs.append)
    assert ref["uri"] == f"{store.uri}/datasets/{ref['digest']}" and ref["images"] == 96
    assert dataref.publish(ds, store, log=logs.append) == ref and "nothing uploaded" in logs[-1]
    artifact = tmp_path / "artifact"
    dataref.write_reference(artifact, ref, ds)
    assert sorted(p.name for p in artifact.iterdir()) == ["ingest_report.json", "reference.json"]
    got = dataref.resolve(artifact, tmp_path / "scratch", log=logs.append)
    assert got == tmp_path / "scratch" / "datasets" / ref["digest"]
    for rel in ["manifest.parquet"] + [p for p, _ in dataref._files(ds)]:
        assert (got / rel).read_bytes() == (ds / rel).read_bytes(), rel
    assert dataref.resolve(artifact, tmp_path / "scratch") == got  # fetched once per pod
    # a changed object in the store is caught
    first = dataref._files(ds)[0][0]
    (tmp_path / "bad.png").write_bytes(b"not the image")
    Store(ref["uri"]).put(tmp_path / "bad.png", first)
    with pytest.raises(ValueError, match="sha256 differs"):
        dataref.resolve(artifact, tmp_path / "scratch2")
    assert not (tmp_path / "scratch2" / "datasets" / ref["digest"]).exists()


def test_ingest_step_with_a_store_writes_only_the_reference(store, tmp_path, synth_dir, monkeypatch):
    monkeypatch.setattr("sslmae.kubeflow.steps.SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    result = ingest_step(to_dict(load_config(None)), str(synth_dir), str(tmp_path / "dataset"), store.uri)
    assert result["n_images"] == 96 and result["dataset_uri"].startswith(store.uri)
    assert dataref.read_reference(tmp_path / "dataset")["digest"] == result["digest"]
    assert not (tmp_path / "dataset" / "images").exists()


@pytest.mark.slow
def test_a_shard_dataset_goes_into_the_store_and_every_step_streams_it(store, tmp_path, synth_dir, monkeypatch):
    """data.format=shards with a store: ingest writes the shards into the store (nothing of the
    dataset in the pod's scratch), and split, a trial and evaluate read them where they are: no
    step downloads the dataset; the trial's cache holds shards, bounded by data.stream_cache_bytes."""
    from sslmae.kubeflow.steps import evaluate_step, split_step, trial_step

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("sslmae.kubeflow.steps.SCRATCH", str(scratch))
    params = to_dict(load_config(None, tiny_overrides(tmp_path, synth_dir, tmp_path / "unused.csv") + [
        "data.format=shards", "data.shard_bytes=65536", "data.loading=stream", "data.stream_cache_bytes=200000",
        "train.epochs=1"]))
    result = ingest_step(params, str(synth_dir), str(tmp_path / "dataset"), store.uri)
    ref = dataref.read_reference(tmp_path / "dataset")
    assert ref["format"] == "shards" and ref["images"] == 96 and result["dataset_uri"] == ref["uri"]
    stored = Store(ref["uri"]).keys()
    assert "manifest.parquet" in stored and sum(k.endswith(".tar") for k in stored) >= 3
    assert not Store(store.uri).child("datasets", "incoming").keys(), "the ingest's incoming folder is removed"
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == ["ingest_report.json", "reference.json"]
    assert not list(scratch.rglob("*.tar")) and not (scratch / "datasets").exists()

    split = tmp_path / "split.csv"
    counts = split_step(params, str(tmp_path / "dataset"), str(split))
    assert sum(counts[k] for k in ("labeled", "unlabeled", "val", "test")) == 96
    metrics = trial_step(params, str(tmp_path / "dataset"), str(split), "w0.3", str(tmp_path / "trial"))
    assert 0 <= metrics["macro_auprc"] <= 1 and (tmp_path / "trial" / "model.pt").is_file()
    evaluated = evaluate_step(params, str(tmp_path / "trial" / "model.pt"), str(tmp_path / "dataset"), str(split),
                              str(tmp_path / "eval"))
    assert evaluated["n_samples"] == counts["test"]
    assert not (scratch / "datasets").exists(), "no step fetched the dataset"
    cached = list((tmp_path / "cache").rglob("*.tar"))  # data.cache_dir (in a pod: its scratch volume)
    if store.uri.startswith("s3://"):  # streamed through the bounded cache; a local store is read in place
        assert cached and sum(p.stat().st_size for p in cached) <= 200000 < sum(Store(ref["uri"]).size(k)
                                                                                   for k in stored)
    else:
        assert not cached


def test_the_split_is_frozen_per_experiment_in_the_store(store, tmp_path):
    """split.frozen (default) with a store: each run's split step carries the experiment's table
    forward, so an image never changes side when the data grows, and the history grows with it."""
    import pandas as pd

    from sslmae.datasets.synth import write_synthetic
    from sslmae.kubeflow.steps import split_step

    params = to_dict(load_config(None, ["tracking.experiment=team a/exp"]))
    side = {"labeled": "train", "unlabeled": "train", "val": "val", "test": "test"}
    sides = []
    for run, n in enumerate((60, 90)):
        data = write_synthetic(tmp_path / f"data{run}", n=n, size=16, seed=0)
        result = split_step(params, str(data), str(tmp_path / f"split{run}.csv"), "", store.uri)
        assert result["frozen_split"] == f"{store.uri}/splits/team-a-exp/split.csv"
        assert result["kept_from_earlier"] is (run == 1)
        table = pd.read_csv(tmp_path / f"split{run}.csv")
        sides.append(dict(zip(table["image"], table["subset"].map(side))))
    assert all(sides[1][i] == s for i, s in sides[0].items()) and len(sides[1]) == 90
    area = Store(f"{store.uri}/splits/team-a-exp")
    assert sorted(area.keys()) == ["split.csv", "split.history.csv"]
    area.get("split.history.csv", tmp_path / "history.csv")
    history = pd.read_csv(tmp_path / "history.csv")
    assert history.groupby("generation").size().to_dict() == {0: 60, 1: 30}
    # starting over is explicit
    fresh = split_step(to_dict(load_config(None, ["split.frozen=false"])), str(tmp_path / "data1"),
                       str(tmp_path / "split2.csv"), "", store.uri)
    assert fresh["frozen_split"] == "" and not fresh["kept_from_earlier"]


def test_checkpoints_are_mirrored_and_restored(store, tmp_path):
    ckpts = TrialCheckpoints(store, "run/1", "w0.3", log=lambda *_: None)
    out = tmp_path / "pod1"
    (out / "checkpoints").mkdir(parents=True)
    with ckpts.mirrored(out, every_s=0.05):
        for epoch in range(3):
            tmp = out / "checkpoints" / ".last.tmp"
            tmp.write_bytes(f"epoch {epoch}".encode())
            os.replace(tmp, out / "checkpoints" / "last.ckpt")  # as Lightning's atomic CheckpointIO does
            time.sleep(0.2)
        (out / "checkpoints" / "best.ckpt").write_bytes(b"best")
    assert store.keys() == ["runs/run-1/trials/w0.3/best.ckpt", "runs/run-1/trials/w0.3/last.ckpt"]
    fresh = tmp_path / "pod2"
    assert ckpts.restore(fresh) is True
    assert (fresh / "checkpoints" / "last.ckpt").read_bytes() == b"epoch 2"
    assert (fresh / "checkpoints" / "best.ckpt").read_bytes() == b"best"
    assert TrialCheckpoints(store, "run/1", "learned").restore(tmp_path / "pod3") is False


def _history_rows(ckpt: Path) -> list[dict]:
    state = torch.load(ckpt, weights_only=True)
    (rows,) = [v["rows"] for k, v in state["callbacks"].items() if "EpochHistory" in k]
    return rows


@pytest.mark.slow
def test_a_killed_trial_resumes_from_the_stored_checkpoint_in_a_new_process(s3, tmp_path, synth_dir, split_file,
                                                                              monkeypatch):
    """Pod 1 trains with its checkpoints mirrored to S3 and is SIGKILLed mid-run; pod 2 (a new
    process with a new, empty output folder, as a KFP retry gets) resumes from S3."""
    epochs = 10
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("SSLMAE_CHECKPOINT_UPLOAD_EVERY_S", "0.5")  # a tiny epoch takes ~0.2 s
    store = Store(f"s3://{s3.bucket}/work")
    cfg = load_config(None, tiny_overrides(tmp_path, synth_dir, split_file) + [f"train.epochs={epochs}",
                                                                              "train.checkpoint_every=1"])
    (tmp_path / "params.json").write_text(json.dumps(to_dict(cfg)))
    code = ("import json, sys; from sslmae.kubeflow.steps import trial_step; "
            "p = json.load(open(sys.argv[1])); "
            "print(json.dumps(trial_step(p, sys.argv[2], sys.argv[3], 'learned', sys.argv[4], sys.argv[5], 'run-1')))")
    # pod 1 is a slow pod: from its second epoch on it lingers 3 s after each last.ckpt (the mirror
    # thread goes on uploading), so the kill lands mid-run with few epochs planned, however busy the machine
    slow = ("import time; from sslmae.train.checkpoints import AtomicCheckpointIO as IO; real = IO.save_checkpoint\n"
            "def save(self, checkpoint, path, storage_options=None):\n"
            "    real(self, checkpoint, path, storage_options)\n"
            "    if str(path).endswith('last.ckpt') and checkpoint['epoch'] >= 1: time.sleep(3)\n"
            "IO.save_checkpoint = save\n")

    def pod_process(out, prelude=""):
        return subprocess.Popen([sys.executable, "-c", prelude + code, str(tmp_path / "params.json"), str(synth_dir),
                                 str(split_file), str(out), store.uri], cwd=tmp_path, env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    first = pod_process(tmp_path / "pod1", slow)
    stored = tmp_path / "stored.ckpt"
    deadline = time.monotonic() + 600
    remote = store.child("runs/run-1/trials/learned")
    while not (remote.get("last.ckpt", stored) and torch.load(stored, weights_only=True)["epoch"] >= 1):
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert remote.get("last.ckpt", stored)
    before = _history_rows(stored)
    assert 1 <= len(before) < epochs, "killed mid-run"
    second = pod_process(tmp_path / "pod2")
    output = second.communicate(timeout=900)[0]
    assert second.returncode == 0, output[-3000:]
    assert "resuming from the stored checkpoint" in output
    import pandas as pd

    history = pd.read_csv(tmp_path / "pod2" / "history.csv")
    assert list(history["epoch"]) == list(range(epochs))
    for row in before:  # epochs before the kill come from the stored state, not from training again
        assert history.loc[row["epoch"], "epoch_seconds"] == pytest.approx(row["epoch_seconds"])


@pytest.mark.parametrize("action", ["run-local", "run-containers"])
def test_a_local_run_claims_its_folder_before_starting_anything(action, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["pipeline", action, "--root", str(mine), "--params", str(REPO / "params.yaml")]) == 2
    err = capsys.readouterr().err
    assert "refusing to write there" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
