from typing import List

from kfp import dsl

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_trials(params: dict) -> List[str]:
    """The grid's trials: grid.trials (w0.3, ..., learned, or baseline), checked against the mode."""
    from sslmae.kubeflow.steps import plan_trials as plan

    return plan(params)
