from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report(params: dict, selected: Input[Model], evaluation: Input[Artifact], dataset: Input[Dataset],
           page: Output[HTML]):
    """The self-contained HTML report of the grid and its evaluation (also logged to MLflow); the dataset
    gives a model with bands its sample tiles."""
    from sslmae.kubeflow.steps import report_step

    report_step(selected.path, evaluation.path, page.path, params, dataset.path)
