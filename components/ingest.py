from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(params: dict, source: str, unlabeled: list, store: str, dataset: Output[Dataset],
           stats: Output[Metrics]):
    """Any supported layout (folder, archive, s3://), and the unlabeled sources beside it, -> the
    canonical dataset folder; with a store (s3://bucket/prefix), published there by digest and
    passed on by reference."""
    from sslmae.kubeflow.steps import ingest_step

    result = ingest_step(params, source, dataset.path, store, unlabeled)
    dataset.metadata.update(result)
    stats.log_metric("n_images", result["n_images"])
    stats.log_metric("n_pool", result.get("n_pool", 0))
