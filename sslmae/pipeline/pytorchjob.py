"""Multi-node training through the Kubeflow Training Operator: render a PyTorchJob
(N pods x G GPUs) that runs the same `sslmae train` entrypoint, submit it, follow its
status, and fail with the job's own error if it fails.

Data travels on a shared PersistentVolumeClaim mounted at MOUNT in every pod: the launcher
copies the dataset, split and params there, and copies the trained model back.
The operator sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE (pods) and RANK (pod index) in each
pod; torchrun turns them into one process per GPU (`train.devices=G`, `train.num_nodes=N`).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

MOUNT = "/mnt/sslmae"
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"


@dataclass
class JobSpec:
    name: str
    namespace: str
    image: str
    nodes: int  # pods: 1 master + (nodes - 1) workers
    gpus: int  # per pod
    pvc: str  # claim shared by the launcher and every pod
    run_dir: str  # under MOUNT: params.yaml, dataset/, split.csv, out/
    cpu: str = "8"
    memory: str = "64G"
    shm: str = "16Gi"
    mlflow_secret: str = "sslmae-mlflow"
    mount: str = MOUNT  # where the claim is mounted in every pod


def entrypoint(spec: JobSpec) -> str:
    """The shell command of every pod: torchrun over this pod's GPUs, then `sslmae train`."""
    run = f"{spec.mount}/{spec.run_dir}"
    train = ["sslmae", "train", "--params", f"{run}/params.yaml", f"data.dir={run}/dataset",
             f"data.split_file={run}/split.csv", f"train.out_dir={run}/out", f"train.devices={spec.gpus}",
             f"train.num_nodes={spec.nodes}", "train.progress_bar=false"]
    torchrun = ["torchrun", f"--nnodes={spec.nodes}", f"--nproc_per_node={spec.gpus}",
                '--node_rank="$RANK"', '--master_addr="$MASTER_ADDR"', '--master_port="$MASTER_PORT"',
                "-m", "sslmae.cli", *train[1:]]
    return " ".join(a if a.startswith("--node_rank") or a.startswith("--master") else shlex.quote(a)
                    for a in torchrun)


def _replica(spec: JobSpec, replicas: int) -> dict:
    return {
        "replicas": replicas,
        "restartPolicy": "OnFailure",
        "template": {"spec": {
            "containers": [{
                "name": "pytorch",  # the operator requires this name
                "image": spec.image,
                "command": ["bash", "-c", entrypoint(spec)],
                "resources": {"limits": {"nvidia.com/gpu": spec.gpus, "cpu": spec.cpu, "memory": spec.memory}},
                "envFrom": [{"secretRef": {"name": spec.mlflow_secret, "optional": True}}],
                "volumeMounts": [{"name": "data", "mountPath": spec.mount}, {"name": "dshm", "mountPath": "/dev/shm"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": spec.pvc}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm}}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }},
    }


def render(spec: JobSpec) -> dict:
    """The PyTorchJob manifest (kubeflow.org/v1)."""
    if spec.nodes < 1 or spec.gpus < 1:
        raise ValueError(f"a PyTorchJob needs nodes >= 1 and gpus >= 1, got {spec.nodes} x {spec.gpus}")
    replicas = {"Master": _replica(spec, 1)}
    if spec.nodes > 1:
        replicas["Worker"] = _replica(spec, spec.nodes - 1)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PyTorchJob",
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": {"app": "sslmae"}},
            "spec": {"runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3}, "pytorchReplicaSpecs": replicas}}


def outcome(status: dict | None) -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a PyTorchJob's status."""
    conditions = (status or {}).get("conditions") or []
    for cond in reversed(conditions):  # the newest condition decides
        if cond.get("status") != "True":
            continue
        kind = cond.get("type")
        if kind == "Succeeded":
            return "succeeded", cond.get("message", "")
        if kind == "Failed":
            return "failed", f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}"
    return "running", conditions[-1].get("message", "") if conditions else "created"


def run(manifest: dict, timeout_s: float = 7 * 24 * 3600, poll_s: float = 15.0, log=print, api=None) -> str:
    """Create the job and wait for it; returns the final message, raises RuntimeError on failure."""
    if api is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api = client.CustomObjectsApi()
    meta = manifest["metadata"]
    api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, manifest)
    log(f"PyTorchJob {meta['namespace']}/{meta['name']} created")
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"])
        state, message = outcome(obj.get("status"))
        if (state, message) != last:
            log(f"PyTorchJob {meta['name']}: {state} {message}".rstrip())
            last = (state, message)
        if state == "succeeded":
            return message
        if state == "failed":
            raise RuntimeError(f"PyTorchJob {meta['name']} failed: {message}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"PyTorchJob {meta['name']} still running after {timeout_s} s")
        time.sleep(poll_s)
