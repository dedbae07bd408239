from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def split(params: dict, frozen_split: str, store: str, dataset: Input[Dataset], split_file: Output[Dataset]):
    """Stratified labeled/unlabeled/val/test split table (CSV); earlier images keep their side
    across runs: the table at frozen_split (path or s3:// URI), else with a store and
    split.frozen, the experiment's table in the store."""
    from sslmae.kubeflow.steps import split_step

    split_file.metadata.update(split_step(params, dataset.path, split_file.path, frozen_split, store))
