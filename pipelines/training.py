"""The training DAG for Kubeflow Pipelines:

    ingest -> split -> ParallelFor(trials: one per w in grid.ws + learned) -> Collected
           -> select -> evaluate (test) -> register as challenger -> promote if better -> report

`build_pipeline(...)` returns the pipeline function; its one parameter `params` has the
shape of params.yaml (its default is the params the pipeline was compiled with), and
`source` overrides data.source, so a recurring run can point at newly arrived data, and
`frozen_split` (a path or s3:// URI) keeps the test set frozen across those runs.
"""


from dataclasses import dataclass, field

from kfp import dsl, kubernetes

from components import IMAGE

from components.evaluate import evaluate
from components.ingest import ingest
from components.plan import plan_trials
from components.register import register_and_promote
from components.report import report
from components.select import select
from components.split import split
from components.train import train_trial
from components.train_multinode import train_trial_multinode


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
    train_retries: int = 2
    parallelism: int = 4  # trials at once
    node_selector: dict = field(default_factory=dict)  # e.g. {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    tolerations: list = field(default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                        "effect": "NoSchedule"}])
    s3_secret: str = "sslmae-s3"  # keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
    mlflow_secret: str = "sslmae-mlflow"  # keys: MLFLOW_TRACKING_URI (+ MLFLOW_TRACKING_USERNAME/PASSWORD)
    cache_ingest: bool = False  # the source may change behind the same URI; cache only with a data version
    nodes: int = 1  # > 1: each trial runs as a PyTorchJob over this many pods (gpus each)
    pvc: str = "sslmae-data"  # claim shared by the launcher and the PyTorchJob pods (nodes > 1)
    namespace: str = "kubeflow"


S3_KEYS = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
           "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"}
MLFLOW_KEYS = {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
               "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}


def _cluster(task, res: Resources, s3: bool = False, mlflow: bool = False):
    """Secrets as environment (optional keys stay unset), for steps that reach S3 or MLflow."""
    if s3:
        kubernetes.use_secret_as_env(task, secret_name=res.s3_secret, secret_key_to_env=S3_KEYS, optional=True)
    if mlflow:
        kubernetes.use_secret_as_env(task, secret_name=res.mlflow_secret, secret_key_to_env=MLFLOW_KEYS,
                                     optional=True)
    return task.set_cpu_limit(res.step_cpu).set_memory_limit(res.step_memory)


def _gpu_train(task, res: Resources):
    task.set_accelerator_type(res.gpu_resource).set_accelerator_limit(res.gpus)
    task.set_cpu_limit(res.train_cpu).set_memory_limit(res.train_memory)
    task.set_retry(res.train_retries)  # a restarted pod resumes from the trial's checkpoint
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=res.shm_size)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for tol in res.tolerations:
        kubernetes.add_toleration(task, **tol)
    kubernetes.use_secret_as_env(task, secret_name=res.mlflow_secret, secret_key_to_env=MLFLOW_KEYS, optional=True)
    return task


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
    def training(params: dict = default_params, source: str = "", frozen_split: str = ""):
        data = _cluster(ingest(params=params, source=source), res, s3=True)
        data.set_caching_options(res.cache_ingest)
        parts = _cluster(split(params=params, frozen_split=frozen_split, dataset=data.outputs["dataset"]), res, s3=True)
        parts.set_caching_options(False)  # with frozen_split it reads and writes state outside the DAG
        plan = _cluster(plan_trials(params=params), res)
        with dsl.ParallelFor(items=plan.output, parallelism=res.parallelism) as trial:
            if res.nodes > 1:  # the launcher waits on the PyTorchJob; the GPUs are the job's
                trained = train_trial_multinode(params=params, trial=trial, nodes=res.nodes, gpus=res.gpus,
                                                pvc=res.pvc, namespace=res.namespace, image=IMAGE,
                                                dataset=data.outputs["dataset"],
                                                split_file=parts.outputs["split_file"])
                kubernetes.mount_pvc(trained, pvc_name=res.pvc, mount_path="/mnt/sslmae")
                _cluster(trained, res, mlflow=True).set_retry(res.train_retries)
            else:
                trained = _gpu_train(train_trial(params=params, trial=trial, dataset=data.outputs["dataset"],
                                                 split_file=parts.outputs["split_file"]), res)
        chosen = _cluster(select(params=params, trials=dsl.Collected(trained.outputs["model"])), res, mlflow=True)
        tested = _cluster(evaluate(params=params, selected=chosen.outputs["selected"], dataset=data.outputs["dataset"],
                                   split_file=parts.outputs["split_file"]), res, mlflow=True)
        gate = _cluster(register_and_promote(params=params, selected=chosen.outputs["selected"],
                                             evaluation=tested.outputs["evaluation"], dataset=data.outputs["dataset"],
                                             split_file=parts.outputs["split_file"]), res, mlflow=True)
        gate.set_caching_options(False)  # the registry changes between runs: always decide anew
        _cluster(report(params=params, selected=chosen.outputs["selected"], evaluation=tested.outputs["evaluation"]),
                 res, mlflow=True)

    return training
