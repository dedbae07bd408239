from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_trial_multinode(params: dict, trial: str, nodes: int, gpus: int, pvc: str, namespace: str, image: str,
                          dataset: Input[Dataset], split_file: Input[Dataset],
                          model: Output[Model], metrics: Output[Metrics]):
    """One grid trial as a Kubeflow Training Operator PyTorchJob (nodes x gpus), same entrypoint."""
    import uuid

    from sslmae.pipeline.steps import multinode_trial_step

    name = f"sslmae-{trial.replace('.', '-')}-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "namespace": namespace, "image": image, "nodes": nodes, "gpus": gpus, "pvc": pvc,
            "run_dir": name}
    for k, v in multinode_trial_step(params, dataset.path, split_file.path, trial, model.path, spec).items():
        if isinstance(v, (int, float)):
            metrics.log_metric(k, float(v))
    model.metadata["trial"] = trial
