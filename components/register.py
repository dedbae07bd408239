from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register_and_promote(params: dict, selected: Input[Model], evaluation: Input[Artifact],
                         dataset: Input[Dataset], split_file: Input[Dataset], decision: Output[Artifact]):
    """Register as @challenger; @champion moves to it only if it wins on the frozen test split."""
    import os

    from sslmae.kubeflow.steps import register_promote_step

    result = register_promote_step(params, os.path.join(selected.path, "model.pt"),
                                   os.path.join(evaluation.path, "metrics.json"), dataset.path, split_file.path,
                                   decision.path, split_file.metadata.get("data_key", ""))
    decision.metadata.update({k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))})
