"""The deploy step and `sslmae deploy` against the recording fake Kubernetes API (tests/support/k8s_fake.py),
the InferenceService they write validated against KServe's upstream CRD (tests/support/crds/). A fake
controller plays KServe's part: a predictor whose model is BAD never gets ready. What a real KServe and
Knative then do with the revisions is only visible on a cluster."""

from __future__ import annotations

import json

import pytest
import yaml
from kfp import compiler

from sslmae.kubeflow.deploy import DeployError, Deployer, deploy_command
from sslmae.kubeflow.inference_service import (MODEL_ANNOTATION, PREVIOUS_ANNOTATION, ServiceSpec, manifest,
                                               served_model)
from sslmae.kubeflow.steps import deploy_step
from tests.support.crd_schema import errors
from tests.support.k8s_fake import FakeCustomObjects

CRD = "serving.kserve.io_inferenceservices.yaml"
BAD = "models:/sslmae/666"


def controller(isvc: dict, n: int) -> None:
    """KServe's answer once it has seen the spec: Ready, or a failed revision for the BAD model."""
    meta = isvc["metadata"]
    args = isvc["spec"]["predictor"]["containers"][0]["args"]
    model = args[args.index("--model") + 1]
    revision = f"{meta['name']}-predictor-{meta['generation']:05d}"
    if model == BAD:
        isvc["status"] = {"observedGeneration": meta["generation"], "conditions": [
            {"type": "PredictorReady", "status": "False", "reason": "RevisionFailed",
             "message": 'Revision "x" failed with message: Container failed with: model file not found.'},
            {"type": "Ready", "status": "False", "reason": "RevisionFailed"}]}
        return
    isvc["status"] = {"observedGeneration": meta["generation"],
                      "conditions": [{"type": "PredictorReady", "status": "True"}, {"type": "Ready", "status": "True"}],
                      "components": {"predictor": {"latestCreatedRevision": revision, "latestReadyRevision": revision,
                                                   "traffic": [{"revisionName": revision, "percent": 100}]}}}


def spec(model: str, **kw) -> ServiceSpec:
    return ServiceSpec(name="sslmae", model=model, image="registry.example/sslmae:1", **kw)


def deployer(api) -> Deployer:
    return Deployer(api, "ml", log=lambda m: None, poll_s=0, sleep=lambda s: None)


def test_the_manifest_fits_kserves_crd():
    for m in (manifest(spec("models:/sslmae/3")),
              manifest(spec("models:/sslmae/4", gpus=1, service_account="sslmae-serve", namespace="ml"), canary=10,
                       previous="models:/sslmae/3")):
        assert errors(m, CRD) == []
    bad = manifest(spec("models:/sslmae/3"))
    bad["spec"]["predictor"]["canaryPercent"] = 10  # a misspelt field is refused, as the API server's strict validation does
    assert errors(bad, CRD)
    container = manifest(spec("models:/sslmae/3", gpus=2))["spec"]["predictor"]["containers"][0]
    assert container["args"][:3] == ["serve", "--model", "models:/sslmae/3"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert secrets == {"sslmae-s3", "sslmae-mlflow"}


def test_a_first_deploy_creates_and_waits_and_a_second_changes_nothing():
    api = FakeCustomObjects(on_get=controller)
    result = deployer(api).deploy(spec("models:/sslmae/1"))
    assert result["changed"] and api.verbs() == ["create"]
    assert errors(api.only(), CRD) == []
    assert deployer(api).deploy(spec("models:/sslmae/1"))["changed"] is False
    assert api.verbs() == ["create"]


def test_a_canary_then_promote_then_rollback():
    api = FakeCustomObjects(on_get=controller)
    deployer(api).deploy(spec("models:/sslmae/1"))
    deployer(api).deploy(spec("models:/sslmae/2"), canary=20)
    isvc = api.only()
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert isvc["metadata"]["annotations"] == {MODEL_ANNOTATION: "models:/sslmae/2", PREVIOUS_ANNOTATION: "models:/sslmae/1"}
    deployer(api).deploy(spec("models:/sslmae/2"), canary=50)  # a wider canary keeps the record of the one before
    assert api.only()["metadata"]["annotations"][PREVIOUS_ANNOTATION] == "models:/sslmae/1"
    deployer(api).promote("sslmae")
    assert "canaryTrafficPercent" not in api.only()["spec"]["predictor"]
    deployer(api).rollback("sslmae")
    isvc = api.only()
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0  # KServe pins all traffic to the previous revision
    assert served_model(isvc) == "models:/sslmae/1"
    assert api.verbs() == ["create", "replace", "replace", "replace", "replace"]
    assert all(errors(call[3], CRD) == [] for call in api.calls if call[0] == "replace")


def test_a_failed_rollout_restores_the_previous_spec_and_names_the_reason():
    api = FakeCustomObjects(on_get=controller)
    deployer(api).deploy(spec("models:/sslmae/1"))
    with pytest.raises(DeployError, match="RevisionFailed.*model file not found.*models:/sslmae/1 keeps serving"):
        deployer(api).deploy(spec(BAD))
    assert served_model(api.only()) == "models:/sslmae/1"
    args = api.only()["spec"]["predictor"]["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "models:/sslmae/1"


def test_a_rollout_that_never_settles_times_out():
    api = FakeCustomObjects(on_get=lambda isvc, n: None)  # no controller: never ready
    clock = iter(range(0, 10_000, 100))
    d = Deployer(api, "ml", log=lambda m: None, poll_s=0, sleep=lambda s: None, clock=lambda: next(clock))
    with pytest.raises(DeployError, match="not ready after 600 s"):
        d.deploy(spec("models:/sslmae/1"), timeout_s=600)


def test_rollback_without_an_earlier_model_is_refused():
    api = FakeCustomObjects(on_get=controller)
    deployer(api).deploy(spec("models:/sslmae/1"))
    with pytest.raises(DeployError, match="nothing to roll back to"):
        deploy_command("rollback", "sslmae", "ml", custom=api, log=lambda m: None)


def test_the_deploy_step_serves_the_champion_the_gate_left(tmp_path):
    api = FakeCustomObjects(on_get=controller)
    (tmp_path / "decision").mkdir()
    (tmp_path / "decision" / "promotion.json").write_text(json.dumps({"name": "sslmae", "champion_now": 7,
                                                                      "promoted": True}))
    service = {"name": "sslmae", "image": "registry.example/sslmae:1", "namespace": "ml", "cpu": "1", "memory": "2G",
               "gpus": 0, "canary": 0, "timeout_s": 60}
    result = deploy_step(str(tmp_path / "decision"), service, str(tmp_path / "out.json"), custom=api)
    assert result["model"] == "models:/sslmae/7" and api.calls[0][1] == "ml"
    assert json.loads((tmp_path / "out.json").read_text())["model"] == "models:/sslmae/7"
    again = deploy_step(str(tmp_path / "decision"), service, str(tmp_path / "out2.json"), custom=api)
    assert again["changed"] is False  # the champion did not move: nothing rolls out


def test_the_compiled_pipeline_deploys_after_the_gate_unless_turned_off(tmp_path):
    from pipelines.training import Resources, build_pipeline
    from sslmae.config import load_config, to_dict

    out = tmp_path / "p.yaml"
    compiler.Compiler().compile(build_pipeline(to_dict(load_config(None, [])), Resources(canary=10)), str(out))
    spec_ = next(yaml.safe_load_all(out.read_text()))  # the pipeline spec; the platform spec follows
    assert spec_["root"]["inputDefinitions"]["parameters"]["deploy"]["defaultValue"] is True
    tasks = spec_["root"]["dag"]["tasks"]
    (cond,) = [t for name, t in tasks.items() if name.startswith("condition")]
    assert "deploy" in cond["triggerPolicy"]["condition"]
    inner = spec_["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    (task,) = inner.values()
    assert task["inputs"]["artifacts"]["decision"]["componentInputArtifact"] == "pipelinechannel--register-and-promote-decision"
    assert cond["inputs"]["artifacts"]["pipelinechannel--register-and-promote-decision"]["taskOutputArtifact"] == {
        "outputArtifactKey": "decision", "producerTask": "register-and-promote"}
    service = task["inputs"]["parameters"]["service"]["runtimeValue"]["constant"]
    assert service["canary"] == 10 and service["name"] == "sslmae"
