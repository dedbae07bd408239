from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_trial(params: dict, trial: str, store: str, run_id: str, dataset: Input[Dataset],
                split_file: Input[Dataset], model: Output[Model], metrics: Output[Metrics]):
    """One grid trial (fixed w or learnable w); model.path is the trial's out_dir. With a store,
    its checkpoints are kept there under run_id and trial, so a retried pod resumes."""
    from sslmae.kubeflow.steps import trial_step

    for k, v in trial_step(params, dataset.path, split_file.path, trial, model.path, store, run_id).items():
        if isinstance(v, (int, float)):
            metrics.log_metric(f"val_{k}", float(v))
    model.metadata["trial"] = trial
