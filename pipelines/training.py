"""The training DAG for Kubeflow Pipelines:

    ingest -> split -> ParallelFor(trials: grid.trials, e.g. w0.3, w0.7, learned) -> Collected
           -> select -> evaluate (test) -> register as challenger -> promote if better -> report

`build_pipeline(...)` returns the pipeline function. Its parameter `params` has the shape of
params.yaml (its default is the params the pipeline was compiled with); `source` overrides
data.source, so a recurring run can point at newly arrived data; the test set stays frozen across
those runs: `frozen_split` (a path or s3:// URI) names the table to carry forward, and without it,
with a store and split.frozen (default), the store keeps one per experiment; `store` (s3://bucket/prefix, through the
sslmae-s3 secret) is where the run keeps the dataset by digest, passed between steps by
reference, and the trial checkpoints, so a retried trial resumes (docs/kubeflow.md).
"""


from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from components import IMAGE

from components.deploy import deploy_champion
from components.evaluate import evaluate
from components.ingest import ingest
from components.plan import plan_trials
from components.register import register_and_promote
from components.report import report
from components.select import select
from components.split import split
from components.train import train_trial
from components.train_multinode import train_trial_multinode
from sslmae.kubeflow.multinode import check_trainer
from sslmae.kubeflow.pytorchjob import MOUNT


@dataclass
class Resources:
    """What the cluster gives each task; the train task's GPU request is the point."""

    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    train_cpu: str = "8"
    train_memory: str = "32G"
    step_cpu: str = "2"
    step_memory: str = "8G"
    shm_size: str = "8Gi"  # memory-backed /dev/shm for DataLoader workers
    scratch: str = "50Gi"  # emptyDir size limit at /scratch, where steps fetch the dataset (by reference)
    train_retries: int = 2
    parallelism: int = 4  # trials at once
    node_selector: dict = field(default_factory=dict)  # e.g. {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    tolerations: list = field(default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                        "effect": "NoSchedule"}])
    s3_secret: str = "sslmae-s3"  # keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
    mlflow_secret: str = "sslmae-mlflow"  # keys: MLFLOW_TRACKING_URI (+ MLFLOW_TRACKING_USERNAME/PASSWORD)
    cache_ingest: bool = False  # the source may change behind the same URI; cache only with a data version
    image: str = IMAGE  # every task's image (and the multi-node job's pods')
    # multi-node training: each trial a job of `nodes` pods x `gpus` GPUs
    nodes: int = 1  # > 1: each trial runs as a PyTorchJob (trainer v1) or TrainJob (v2)
    trainer: str = "v1"  # v1: Training Operator PyTorchJob; v2: Kubeflow Trainer TrainJob
    runtime: str = "torch-distributed"  # v2: the ClusterTrainingRuntime the TrainJob refers to
    pvc: str = "sslmae-data"  # claim shared by the launcher and the job's pods
    namespace: str = ""  # the job's namespace; empty: the launcher pod's own (needed for its ownerReference)
    job_cpu: str = "8"
    job_memory: str = "64G"
    job_shm: str = "16Gi"
    job_ephemeral: str = "20Gi"  # ephemeral-storage request and limit of each job pod
    gang: bool = True  # v1: runPolicy.schedulingPolicy.minAvailable = nodes (Volcano or scheduler-plugins)
    queue: str = ""  # v1: the Volcano queue
    priority_class: str = ""
    job_timeout_s: int = 7 * 24 * 3600
    # serving: the KServe InferenceService the deploy step rolls the champion out to
    service: str = "sslmae"
    service_namespace: str = ""  # empty: the deploy step's own pod's namespace
    serve_cpu: str = "2"
    serve_memory: str = "4G"
    serve_gpus: int = 0
    serve_min_replicas: int = 1
    serve_max_replicas: int = 3
    canary: int = 0  # 1-99: a new champion takes this share of traffic until `sslmae deploy --promote`
    deploy_timeout_s: int = 900

    def serving(self) -> dict:
        """The deploy step's `service` (sslmae.kubeflow.steps.deploy_step)."""
        return {"name": self.service, "image": self.image, "namespace": self.service_namespace, "cpu": self.serve_cpu,
                "memory": self.serve_memory, "gpus": self.serve_gpus, "gpu_resource": self.gpu_resource,
                "min_replicas": self.serve_min_replicas, "max_replicas": self.serve_max_replicas,
                "s3_secret": self.s3_secret, "mlflow_secret": self.mlflow_secret, "canary": self.canary,
                "timeout_s": self.deploy_timeout_s}

    def job(self) -> dict:
        """The JobSpec fields every multi-node launcher gets (sslmae.kubeflow.multinode)."""
        return {"trainer": check_trainer(self.trainer), "runtime": self.runtime, "image": self.image,
                "nodes": self.nodes, "gpus": self.gpus, "gpu_resource": self.gpu_resource, "pvc": self.pvc,
                "namespace": self.namespace, "cpu": self.job_cpu, "memory": self.job_memory, "shm": self.job_shm,
                "ephemeral": self.job_ephemeral, "mlflow_secret": self.mlflow_secret, "s3_secret": self.s3_secret,
                "gang": self.gang,
                "queue": self.queue, "priority_class": self.priority_class, "timeout_s": self.job_timeout_s,
                "node_selector": dict(self.node_selector), "tolerations": list(self.tolerations), "mount": MOUNT}


S3_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
           "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"}
MLFLOW_KEYS = {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
               "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}


def _cluster(task, res: Resources, s3: bool = False, mlflow: bool = False, scratch: bool = False):
    """The image, secrets as environment (optional keys stay unset) for steps that reach S3 or
    MLflow, and a size-limited scratch volume for steps that fetch the dataset."""
    task.set_container_image(res.image)
    if s3:
        kubernetes.use_secret_as_env(task, secret_name=res.s3_secret, secret_key_to_env=S3_KEYS, optional=True)
    if mlflow:
        kubernetes.use_secret_as_env(task, secret_name=res.mlflow_secret, secret_key_to_env=MLFLOW_KEYS,
                                     optional=True)
    if scratch:  # KFP cannot request ephemeral-storage for a task; an emptyDir with a limit bounds it
        kubernetes.empty_dir_mount(task, volume_name="scratch", mount_path="/scratch", size_limit=res.scratch)
    return task.set_cpu_limit(res.step_cpu).set_memory_limit(res.step_memory)


def _gpu_train(task, res: Resources):
    task.set_container_image(res.image)
    task.set_accelerator_type(res.gpu_resource).set_accelerator_limit(res.gpus)
    task.set_cpu_limit(res.train_cpu).set_memory_limit(res.train_memory)
    task.set_retry(res.train_retries)  # a new pod resumes from the checkpoints kept in the store
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=res.shm_size)
    kubernetes.empty_dir_mount(task, volume_name="scratch", mount_path="/scratch", size_limit=res.scratch)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in res.tolerations:
        kubernetes.add_toleration(task, **tol)
    kubernetes.use_secret_as_env(task, secret_name=res.mlflow_secret, secret_key_to_env=MLFLOW_KEYS, optional=True)
    kubernetes.use_secret_as_env(task, secret_name=res.s3_secret, secret_key_to_env=S3_KEYS, optional=True)
    return task


def _launcher(task, res: Resources):
    """The multi-node launcher: the claim, and its own pod's name, uid and namespace (the job's owner)."""
    kubernetes.mount_pvc(task, pvc_name=res.pvc, mount_path=MOUNT)
    for env, path in (("POD_NAME", "metadata.name"), ("POD_UID", "metadata.uid"),
                      ("POD_NAMESPACE", "metadata.namespace")):
        kubernetes.use_field_path_as_env(task, env_name=env, field_path=path)
    return _cluster(task, res, s3=True, mlflow=True, scratch=True).set_retry(res.train_retries)


def _without_nulls(params: dict) -> dict:
    """KFP parameters cannot hold null: a null key is left out (its dataclass default is null)."""
    return {k: _without_nulls(v) if isinstance(v, dict) else v for k, v in params.items() if v is not None}


def build_pipeline(default_params: dict, res: "Resources | None" = None, name: str = "sslmae-training"):
    res = res or Resources()
    default_params = _without_nulls(default_params)
    if res.gpus > 0:  # train on every GPU the task requests (per pod for PyTorchJobs)
        default_params = {**default_params, "train": {**default_params.get("train", {}), "devices": res.gpus,
                                                      "num_nodes": res.nodes}}

    @dsl.pipeline(name=name, description="SSL-MAE grid search, evaluation, registry promotion and report")
    def training(params: dict = default_params, source: str = "", unlabeled: list = [], frozen_split: str = "",
                 store: str = "", deploy: bool = True):
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        data = _cluster(ingest(params=params, source=source, unlabeled=unlabeled, store=store), res, s3=True,
                        scratch=True)
        data.set_caching_options(res.cache_ingest)
        dataset = data.outputs["dataset"]
        parts = _cluster(split(params=params, frozen_split=frozen_split, store=store, dataset=dataset), res, s3=True,
                         scratch=True)
        parts.set_caching_options(False)  # a frozen split reads and writes state outside the DAG
        split_file = parts.outputs["split_file"]
        plan = _cluster(plan_trials(params=params), res)
        with dsl.ParallelFor(items=plan.output, parallelism=res.parallelism) as trial:
            if res.nodes > 1:  # the launcher waits on the job; the GPUs are the job's
                trained = _launcher(train_trial_multinode(params=params, trial=trial, job=res.job(), run_id=run_id,
                                                          dataset=dataset, split_file=split_file), res)
            else:
                trained = _gpu_train(train_trial(params=params, trial=trial, store=store, run_id=run_id,
                                                 dataset=dataset, split_file=split_file), res)
        chosen = select(params=params, store=store, run_id=run_id, claim=MOUNT if res.nodes > 1 else "",
                        trials=dsl.Collected(trained.outputs["model"]))
        if res.nodes > 1:  # it removes the run's staging folder from the claim
            kubernetes.mount_pvc(chosen, pvc_name=res.pvc, mount_path=MOUNT)
        _cluster(chosen, res, s3=True, mlflow=True)
        tested = _cluster(evaluate(params=params, selected=chosen.outputs["selected"], dataset=dataset,
                                   split_file=split_file), res, s3=True, mlflow=True, scratch=True)
        gate = _cluster(register_and_promote(params=params, selected=chosen.outputs["selected"],
                                             evaluation=tested.outputs["evaluation"], dataset=dataset,
                                             split_file=split_file), res, s3=True, mlflow=True, scratch=True)
        gate.set_caching_options(False)  # the registry changes between runs: always decide anew
        with dsl.If(deploy == True):  # noqa: E712  (a KFP condition, not a Python comparison)
            served = _cluster(deploy_champion(service=res.serving(), decision=gate.outputs["decision"]), res)
            served.set_caching_options(False)  # the cluster changes between runs
        _cluster(report(params=params, selected=chosen.outputs["selected"], evaluation=tested.outputs["evaluation"],
                        dataset=dataset), res, mlflow=True, s3=True, scratch=True)

    return training
