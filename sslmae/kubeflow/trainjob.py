"""Kubeflow Trainer v2: one trial as a `TrainJob` (trainer.kubeflow.org/v1alpha1) that refers to a
`ClusterTrainingRuntime` (default `torch-distributed`, which the Trainer installs). The runtime
brings the JobSet template and the torch plugin, which gives every node the PET_* variables
torchrun reads (nodes, rank, master); the TrainJob sets the image, the command, the nodes, the
processes and resources per node, and patches the pods (`runtimePatches`: the claim, /dev/shm,
tolerations, the Istio annotation). Checked against the v2.3.0 CRD in tests/support/crds/.

Gang scheduling in v2 is the runtime's `spec.podGroupPolicy` (coscheduling or volcano), set by
whoever installs the runtime, not by the TrainJob (docs/kubeflow.md).
"""

from __future__ import annotations

from sslmae.kubeflow.k8sjob import Kind, conditions_outcome
from sslmae.kubeflow.pytorchjob import ISTIO, JobSpec, check, entrypoint, labels, metadata, resources, volumes

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NODE = "node"  # the replicated job and container of the torch runtimes
PATCH_MANAGER = "sslmae.org/launcher"
MLFLOW_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")


def render(spec: JobSpec) -> dict:
    """The TrainJob manifest."""
    check(spec)
    vols, mounts = volumes(spec)
    pod_spec = {"volumes": vols, "tolerations": spec.tolerations,
                "containers": [{"name": NODE, "volumeMounts": mounts}]}
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    pod = {"metadata": {"annotations": dict(ISTIO), "labels": labels(spec)}, "spec": pod_spec}
    # runtime patches cannot add envFrom: each MLflow and S3 key comes from its secret, optionally
    env = [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
           for secret, keys in ((spec.mlflow_secret, MLFLOW_KEYS), (spec.s3_secret, S3_KEYS)) for key in keys]
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainJob", "metadata": metadata(spec),
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": spec.runtime},
            "activeDeadlineSeconds": spec.timeout_s,
            "trainer": {"image": spec.image, "command": ["bash", "-c", entrypoint(spec, from_env=True)],
                        "numNodes": spec.nodes, "numProcPerNode": spec.gpus, "resourcesPerNode": resources(spec),
                        "env": env},
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
                "replicatedJobs": [{"name": NODE, "template": {"spec": {"template": pod}}}]}}}}],
        },
    }


def outcome(status: dict | None) -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a TrainJob's status."""
    return conditions_outcome(status, ok="Complete")


KIND = Kind(GROUP, VERSION, PLURAL, "TrainJob", outcome,
            pod_selector=lambda name: f"jobset.sigs.k8s.io/jobset-name={name}",
            is_primary=lambda lab: (lab.get("jobset.sigs.k8s.io/replicatedjob-name") == NODE
                                    and lab.get("jobset.sigs.k8s.io/job-index", "0") == "0"
                                    and lab.get("batch.kubernetes.io/job-completion-index", "0") == "0"),
            container=NODE)
