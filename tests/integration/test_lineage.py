"""MLflow tracking, grid nesting, registry, promotion, prediction and lineage against a real
tracking server that keeps its artifacts in S3 (SeaweedFS), as a team's shared server would."""

import hashlib
from pathlib import Path

from mlflow import MlflowClient


def test_a_dataset_input_is_logged_without_mlflow_warnings(tmp_path, synth_dir):
    """The dataset folder becomes a run input named by its digest, and MLflow's own
    double registration of local paths ('' and 'file') prints nothing to the user."""
    import warnings

    from sslmae.tracking.lineage import log_dataset

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("lineage"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        log_dataset(client, run.info.run_id, synth_dir, "train")
    assert not [w for w in seen if "dataset source" in str(w.message)], [str(w.message) for w in seen]
    (used,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    digest = hashlib.sha256((Path(synth_dir) / "labels.csv").read_bytes()).hexdigest()
    assert used.dataset.digest == digest[:16] and used.tags[0].value == "train"
