"""What a reviewer needs to follow a model back in the MLflow UI: every run carries the git commit
of the code that made it and a label that tells pipeline runs apart, training and evaluation
runs name their dataset (an MLflow dataset input with the manifest's digest), and a model file's
training run is found from the files beside it."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

from sslmae.atomic import write_json
from sslmae.digest import file_sha256
from sslmae.redact import redact
from sslmae.datasets.store import Store

RUN_FILE = "mlflow_run.json"  # written beside a run's outputs: which MLflow run holds them
COMMIT_TAG = "mlflow.source.git.commit"
LABEL_ENV = "SSLMAE_RUN_LABEL"  # set by the Kubeflow steps to the pipeline run's id
DIGEST_CHARS = 16  # MLflow keeps dataset digests short; the whole sha256 is a run tag


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def git_commit() -> str | None:
    """HEAD of the git work tree the command runs in (None outside one, e.g. in a pod)."""
    return os.environ.get("SSLMAE_GIT_COMMIT") or _git("rev-parse", "HEAD")


def run_label() -> str:
    """What tells one pipeline run from another in run names: $SSLMAE_RUN_LABEL (a Kubeflow run),
    else the short commit, '+dirty' when the work tree has uncommitted changes."""
    label = os.environ.get(LABEL_ENV)
    if label:
        return label
    commit = git_commit()
    if commit is None:
        return "no-git"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit[:7] + ("+dirty" if dirty else "")


def lineage_tags() -> dict[str, str]:
    """Tags for every run: the git commit (MLflow shows it as the run's source version) and the label."""
    tags = {"sslmae.run_label": run_label()}
    commit = git_commit()
    if commit:
        tags[COMMIT_TAG] = commit
    return tags


def dataset_digest(data_dir: str | Path) -> str | None:
    """sha256 of the dataset's table: the manifest of an ingested dataset (ingest writes it
    deterministically; an s3:// one is fetched to hash it), else a labels-csv folder's labels.csv;
    None if it has neither."""
    if str(data_dir).startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="sslmae-digest-") as tmp:
            local = Path(tmp) / "manifest.parquet"
            return file_sha256(local) if Store(str(data_dir)).get("manifest.parquet", local) else None
    for table in ("manifest.parquet", "labels.csv"):
        if (Path(data_dir) / table).is_file():
            return file_sha256(Path(data_dir) / table)
    return None


def log_dataset(client, run_id: str, data_dir: str | Path, context: str) -> None:
    """An MLflow dataset input on run `run_id`: the dataset folder, named by the folder, with the
    manifest's digest; context says what the run did with it (train, evaluate)."""
    digest = dataset_digest(data_dir)
    if digest is None:
        return
    import mlflow  # optional (the `pipeline` extra): only tracked runs get here
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    remote = str(data_dir).startswith("s3://")
    folder = redact(str(data_dir).rstrip("/")) if remote else Path(data_dir).resolve()
    with warnings.catch_warnings():  # MLflow registers its local-file source twice ('' and 'file'): the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(str(folder))
    dataset = MetaDataset(source, name=str(folder).rsplit("/", 1)[-1], digest=digest[:DIGEST_CHARS])
    tag = mlflow.entities.InputTag(key="mlflow.data.context", value=context)
    inputs = [mlflow.entities.DatasetInput(dataset._to_mlflow_entity(), tags=[tag])]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except mlflow.exceptions.MlflowException:  # parallel trials: another run inserted this dataset first
        client.log_inputs(run_id, datasets=inputs)  # now it exists and is linked, not inserted
    client.set_tag(run_id, "sslmae.dataset.sha256", digest)


def record_run(out_dir: str | Path, run) -> None:
    """Remember which MLflow run holds the outputs of `out_dir` (for nesting and lineage)."""
    if run is not None:
        write_json(Path(out_dir) / RUN_FILE, {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                                              "artifact_uri": run.info.artifact_uri})


def recorded_run_id(out_dir: str | Path) -> str | None:
    path = Path(out_dir) / RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def training_run(model_path: str | Path) -> str | None:
    """The MLflow run that trained `model_path`: recorded beside it by train (mlflow_run.json), or,
    for a grid's selected copy, in selected.json (`run_id`)."""
    folder = Path(model_path).parent
    for name, key in (("selected.json", "run_id"), (RUN_FILE, "run_id")):  # a grid's folder holds both
        path = folder / name
        if path.is_file():
            found = json.loads(path.read_text(encoding="utf-8")).get(key)
            if found:
                return found
    return None
