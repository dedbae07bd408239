from typing import List

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select(params: dict, store: str, run_id: str, claim: str, trials: Input[List[Model]], selected: Output[Model]):
    """Fan-in: the trial with the best validation metric; trials.csv and its model.pt. Then the
    run's stored checkpoints (store) and staging folder (claim, multi-node) are removed."""
    from sslmae.kubeflow.steps import select_step

    result = select_step(params, [t.path for t in trials], selected.path, store, run_id, claim)
    selected.metadata.update({k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))})
