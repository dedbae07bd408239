"""The KServe `InferenceService` (serving.kserve.io/v1beta1) that serves one registered version:
a custom predictor, the sslmae image running `sslmae serve --model models:/NAME/VERSION` (pinned
to the version, so a restarted pod loads what was rolled out, whatever the aliases say since),
with the MLflow and S3 secrets as environment, resources and an optional GPU, and
`canaryTrafficPercent` for a canary. Checked against KServe's CRD in tests/support/crds.

Why not KServe's built-in `modelFormat: mlflow`: it runs on MLServer, which is no longer
maintained (MLflow removed its MLServer integration); a custom predictor on KServe's own Python
model server is KServe's documented path for a model with its own code."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sslmae.kubeflow.k8sjob import LABEL_MANAGED, MANAGED_BY

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
MODEL_ANNOTATION = "sslmae.dev/model"  # the registry version the predictor serves
PREVIOUS_ANNOTATION = "sslmae.dev/previous-model"  # the one it served before (what a failed rollout restores)
PORT = 8080
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
MLFLOW_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class ServiceSpec:
    """What the predictor runs on; `model` is a pinned registry version, models:/NAME/VERSION."""

    name: str
    model: str
    image: str
    namespace: str = ""
    cpu: str = "2"
    memory: str = "4G"
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    min_replicas: int = 1
    max_replicas: int = 3
    max_batch: int = 32
    max_wait_ms: float = 5.0
    s3_secret: str = "sslmae-s3"
    mlflow_secret: str = "sslmae-mlflow"
    service_account: str = ""


def _secret_env(secret: str, keys: tuple[str, ...]) -> list[dict]:
    return [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k, "optional": True}}} for k in keys]


def predictor_container(spec: ServiceSpec) -> dict:
    limits = {"cpu": spec.cpu, "memory": spec.memory, **({spec.gpu_resource: str(spec.gpus)} if spec.gpus else {})}
    probe = {"httpGet": {"path": "/v2/models/sslmae/ready", "port": PORT}, "periodSeconds": 5, "failureThreshold": 3}
    return {
        "name": "kserve-container",
        "image": spec.image,
        "command": ["sslmae"],
        "args": ["serve", "--model", spec.model, "--port", str(PORT), "--max-batch", str(spec.max_batch),
                 "--max-wait-ms", str(spec.max_wait_ms)],
        "env": _secret_env(spec.mlflow_secret, MLFLOW_KEYS) + _secret_env(spec.s3_secret, S3_KEYS),
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": dict(limits), "limits": limits},
        "readinessProbe": probe,
    }


def manifest(spec: ServiceSpec, canary: int | None = None, previous: str | None = None) -> dict:
    """The InferenceService serving `spec.model`; `canary` (1-99) sends that share of traffic to it
    and the rest to the revision rolled out before; `previous` is recorded for rollbacks."""
    if canary is not None and not 0 <= canary <= 100:
        raise ValueError(f"--canary: a percentage 0-100, got {canary}")
    predictor = {"minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas,
                 "containers": [predictor_container(spec)]}
    if spec.service_account:
        predictor["serviceAccountName"] = spec.service_account
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    annotations = {MODEL_ANNOTATION: spec.model, **({PREVIOUS_ANNOTATION: previous} if previous else {})}
    meta = {"name": spec.name, "labels": {LABEL_MANAGED: MANAGED_BY}, "annotations": annotations}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": meta, "spec": {"predictor": predictor}}


def served_model(obj: dict | None) -> str | None:
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(MODEL_ANNOTATION)


def rollout(obj: dict) -> tuple[str, str]:
    """('ready' | 'pending' | 'failed', why) of an InferenceService after a change: ready once the
    controller has seen this generation, Ready is True and the newest predictor revision is ready."""
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    predictor = (status.get("components") or {}).get("predictor") or {}
    failed = [c for c in conditions.values() if c.get("status") == "False" and c.get("reason") in FAILED_REASONS]
    if failed:
        return "failed", "; ".join(f"{c['type']}: {c.get('reason')}: {c.get('message', '')}".strip() for c in failed)
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "pending", "the controller has not seen the change yet"
    ready = conditions.get("Ready", {})
    newest_ready = predictor.get("latestCreatedRevision") == predictor.get("latestReadyRevision")
    if ready.get("status") == "True" and newest_ready:
        return "ready", json.dumps(predictor.get("traffic") or [])
    return "pending", ready.get("message") or ready.get("reason") or "waiting for the predictor"


# Knative's and KServe's reasons for a revision that will not become ready (waiting more does not help)
FAILED_REASONS = {"RevisionFailed", "RevisionMissing", "ContainerMissing", "ExitCode", "ProgressDeadlineExceeded",
                  "InvalidSpec", "ServingRuntimeNotFound", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"}
