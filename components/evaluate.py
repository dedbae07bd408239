from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(params: dict, selected: Input[Model], dataset: Input[Dataset], split_file: Input[Dataset],
             metrics: Output[Metrics], evaluation: Output[Artifact]):
    """The selected model on the test split: metrics.json, per_class.csv, scores.npz."""
    import os

    from sslmae.kubeflow.steps import evaluate_step

    result = evaluate_step(params, os.path.join(selected.path, "model.pt"), dataset.path, split_file.path,
                           evaluation.path)
    for k, v in result.items():
        if isinstance(v, float):
            metrics.log_metric(k, v)
