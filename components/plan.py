from typing import List

from kfp import dsl

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_trials(params: dict) -> List[str]:
    """The grid's trials: one per fixed w in grid.ws, plus 'learned'."""
    from sslmae.pipeline.steps import plan_trials as plan

    return plan(params)
