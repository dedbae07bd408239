from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_trial_multinode(params: dict, trial: str, job: dict, run_id: str, dataset: Input[Dataset],
                          split_file: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """One grid trial as a PyTorchJob (job['trainer'] v1) or TrainJob (v2) of job['nodes'] pods x
    job['gpus'] GPUs, named and staged per run and trial; this task launches it and waits."""
    from sslmae.kubeflow.steps import multinode_trial_step

    for k, v in multinode_trial_step(params, dataset.path, split_file.path, trial, model.path, job, run_id).items():
        if isinstance(v, (int, float)):
            metrics.log_metric(k, float(v))
    model.metadata["trial"] = trial
