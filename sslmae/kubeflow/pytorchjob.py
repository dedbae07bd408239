"""Multi-node training manifests: one trial over N pods x G GPUs running the same `sslmae train`
entrypoint, as a Training Operator v1 `PyTorchJob` (kubeflow.org/v1, `render`) or a Trainer v2
`TrainJob` (sslmae.kubeflow.trainjob). `sslmae.kubeflow.k8sjob` creates, follows and deletes them.

Data travels on a shared PersistentVolumeClaim mounted at MOUNT in every pod: the launcher
stages the dataset (once per run), the split and the trial's params there, the job writes the
trial's output folder there (checkpoints included, so a replaced job resumes), and the launcher
copies the model back. torchrun starts one process per GPU: with v1 from the operator's
MASTER_ADDR, MASTER_PORT and RANK (the pod index), with v2 from the trainer's PET_* variables;
torchrun, not the operator, sets each process's LOCAL_RANK.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from sslmae.kubeflow.k8sjob import LABEL_MANAGED, MANAGED_BY, Kind, conditions_outcome

MOUNT = "/mnt/sslmae"
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
ISTIO = {"sidecar.istio.io/inject": "false"}  # in a profile namespace an injected sidecar never exits
LABEL_TRIAL = "sslmae.org/trial"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@dataclass
class JobSpec:
    name: str
    namespace: str
    image: str
    nodes: int  # pods: 1 master + (nodes - 1) workers (v1); numNodes (v2)
    gpus: int  # per pod
    pvc: str  # claim shared by the launcher and every pod
    run_dir: str  # under mount: this trial's params.yaml, split.csv, out/
    dataset_dir: str = ""  # under mount: the run's dataset (default: run_dir/dataset); or an s3:// shard dataset
    trial: str = ""
    cpu: str = "8"
    memory: str = "64G"
    shm: str = "16Gi"
    ephemeral: str = "20Gi"  # ephemeral-storage request and limit per pod (logs, /tmp, caches)
    gpu_resource: str = "nvidia.com/gpu"
    mlflow_secret: str = "sslmae-mlflow"
    s3_secret: str = "sslmae-s3"  # a streamed dataset's store (AWS_* keys)
    mount: str = MOUNT  # where the claim is mounted in every pod
    owner: dict | None = None  # ownerReference to the launcher pod
    gang: bool = True  # all pods or none (runPolicy.schedulingPolicy.minAvailable = nodes)
    queue: str = ""  # Volcano queue (v1), when the operator gang-schedules with Volcano
    priority_class: str = ""
    timeout_s: int = 7 * 24 * 3600  # activeDeadlineSeconds: the operator stops the job even without a launcher
    backoff_limit: int = 3
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=lambda: [dict(GPU_TOLERATION)])
    runtime: str = "torch-distributed"  # v2: the ClusterTrainingRuntime referenced

    @property
    def data(self) -> str:
        if self.dataset_dir.startswith("s3://"):  # streamed from the store by every pod: no copy on the claim
            return self.dataset_dir
        return f"{self.mount}/{self.dataset_dir or self.run_dir + '/dataset'}"


def train_args(spec: JobSpec) -> list[str]:
    """`sslmae train` arguments of every pod (after `-m sslmae.cli`)."""
    run = f"{spec.mount}/{spec.run_dir}"
    return ["train", "--params", f"{run}/params.yaml", f"data.dir={spec.data}", f"data.split_file={run}/split.csv",
            f"train.out_dir={run}/out", f"train.devices={spec.gpus}", f"train.num_nodes={spec.nodes}",
            "train.progress_bar=false"]


def entrypoint(spec: JobSpec, from_env: bool = False) -> str:
    """The shell command of every pod: torchrun over this pod's GPUs, then `sslmae train`.
    from_env: torchrun takes nodes, rank and master from the PET_* variables (Trainer v2)."""
    if from_env:
        flags = []
    else:
        flags = [f"--nnodes={spec.nodes}", f"--nproc_per_node={spec.gpus}", '--node_rank="$RANK"',
                 '--master_addr="$MASTER_ADDR"', '--master_port="$MASTER_PORT"']
    quoted = [shlex.quote(a) for a in ["-m", "sslmae.cli", *train_args(spec)]]
    return " ".join(["torchrun", *flags, *quoted])


def labels(spec: JobSpec) -> dict:
    out = {"app.kubernetes.io/name": "sslmae", LABEL_MANAGED: MANAGED_BY}
    if spec.trial:
        out[LABEL_TRIAL] = spec.trial
    return out


def metadata(spec: JobSpec) -> dict:
    meta = {"name": spec.name, "namespace": spec.namespace, "labels": labels(spec)}
    if spec.owner:
        meta["ownerReferences"] = [spec.owner]
    return meta


def resources(spec: JobSpec) -> dict:
    amount = {spec.gpu_resource: spec.gpus, "cpu": spec.cpu, "memory": spec.memory,
              "ephemeral-storage": spec.ephemeral}
    return {"limits": dict(amount), "requests": dict(amount)}


def volumes(spec: JobSpec) -> tuple[list, list]:
    """(pod volumes, container volumeMounts): the claim and a memory-backed /dev/shm."""
    return ([{"name": "data", "persistentVolumeClaim": {"claimName": spec.pvc}},
             {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm}}],
            [{"name": "data", "mountPath": spec.mount}, {"name": "dshm", "mountPath": "/dev/shm"}])


def _replica(spec: JobSpec, replicas: int) -> dict:
    vols, mounts = volumes(spec)
    pod = {
        "containers": [{
            "name": "pytorch",  # the operator requires this name
            "image": spec.image,
            "command": ["bash", "-c", entrypoint(spec)],
            "resources": resources(spec),
            "envFrom": [{"secretRef": {"name": spec.mlflow_secret, "optional": True}},
                        {"secretRef": {"name": spec.s3_secret, "optional": True}}],
            "volumeMounts": mounts,
        }],
        "volumes": vols,
        "tolerations": spec.tolerations,
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    return {"replicas": replicas, "restartPolicy": "OnFailure",
            "template": {"metadata": {"annotations": dict(ISTIO), "labels": labels(spec)}, "spec": pod}}


def check(spec: JobSpec) -> None:
    if spec.nodes < 1 or spec.gpus < 1:
        raise ValueError(f"a multi-node job needs nodes >= 1 and gpus >= 1, got {spec.nodes} x {spec.gpus}")


def render(spec: JobSpec) -> dict:
    """The PyTorchJob manifest (kubeflow.org/v1)."""
    check(spec)
    replicas = {"Master": _replica(spec, 1)}
    if spec.nodes > 1:
        replicas["Worker"] = _replica(spec, spec.nodes - 1)
    run_policy = {"cleanPodPolicy": "None", "backoffLimit": spec.backoff_limit,
                  "activeDeadlineSeconds": spec.timeout_s}
    if spec.gang:  # honoured when the operator runs with --gang-scheduler-name (volcano | scheduler-plugins)
        policy = {"minAvailable": spec.nodes}
        if spec.queue:
            policy["queue"] = spec.queue
        if spec.priority_class:
            policy["priorityClass"] = spec.priority_class
        run_policy["schedulingPolicy"] = policy
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PyTorchJob", "metadata": metadata(spec),
            "spec": {"runPolicy": run_policy, "pytorchReplicaSpecs": replicas}}


def outcome(status: dict | None) -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a PyTorchJob's status."""
    return conditions_outcome(status, ok="Succeeded")


KIND = Kind(GROUP, VERSION, PLURAL, "PyTorchJob", outcome,
            pod_selector=lambda name: f"training.kubeflow.org/job-name={name}",
            is_primary=lambda lab: lab.get("training.kubeflow.org/replica-type") == "master",
            container="pytorch")
