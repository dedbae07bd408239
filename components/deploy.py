from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_champion(service: dict, decision: Input[Artifact], deployment: Output[Artifact]):
    """The KServe InferenceService serves the champion the gate left; a failed rollout restores the
    previous spec and fails this step naming the reason."""
    from sslmae.kubeflow.steps import deploy_step

    result = deploy_step(decision.path, service, deployment.path)
    deployment.metadata.update({k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))})
