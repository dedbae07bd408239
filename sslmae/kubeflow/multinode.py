"""One grid trial as a multi-node job, from its launcher (the `train-trial-multinode` KFP task).

On the shared claim (mounted at `mount` in the launcher and in every pod of the job):

    runs/<run>/dataset/           the run's dataset, staged once for all its trials
    runs/<run>/<trial>/params.yaml, split.csv
    runs/<run>/<trial>/out/       what the job writes (checkpoints included)

Paths are fixed per pipeline run and trial, like the job's name, so a retried launcher finds
the earlier job and its checkpoints: the job resumes rather than starting over. The launcher
copies the trained model (without checkpoints) back as its KFP output; the select step removes
`runs/<run>/` once every trial has finished (`remove_run`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import yaml

from sslmae.config import Config, to_dict
from sslmae.kubeflow import dataref, pytorchjob, trainjob
from sslmae.kubeflow.checkpoints import safe_key
from sslmae.kubeflow.k8sjob import Job, cluster_apis, job_name, launcher_namespace, launcher_owner
from sslmae.kubeflow.pytorchjob import MOUNT, JobSpec
from sslmae.train.checkpoints import CHECKPOINT_DIR

TRAINERS = {"v1": (pytorchjob.render, pytorchjob.KIND), "v2": (trainjob.render, trainjob.KIND)}
SPEC_FIELDS = {f.name for f in dataclasses.fields(JobSpec)}
GRACE_S = 600  # the launcher waits this much longer than the job's own deadline


def check_trainer(trainer: str) -> str:
    if trainer not in TRAINERS:
        raise ValueError(f"--trainer: {', '.join(TRAINERS)} (v1: Training Operator PyTorchJob, "
                         f"v2: Kubeflow Trainer TrainJob), not {trainer!r}")
    return trainer


def run_dir(run_id: str) -> str:
    return f"runs/{safe_key(run_id)}"


def stage_dataset(dataset_artifact: str | Path, mount: Path, run_id: str, log=print) -> str:
    """The run's dataset on the claim (fetched or copied once per run), its path under `mount`; a
    referenced shard dataset is not copied: every pod streams it, and this is its URI."""
    ref = dataref.read_reference(dataset_artifact)
    if ref is not None and ref.get("format") == "shards":
        return ref["uri"]
    rel = f"{run_dir(run_id)}/dataset"
    dest = mount / rel
    if (dest / dataref.COMPLETE).is_file():
        return rel
    if ref is not None:
        dataref.fetch(ref, dest, log)
        return rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dataset.partial-", dir=dest.parent))
    try:
        shutil.copytree(dataset_artifact, tmp, dirs_exist_ok=True)
        (tmp / dataref.COMPLETE).write_text("copied\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    dataref.install(tmp, dest)
    log(f"dataset staged on the claim at {dest}")
    return rel


def job_spec(job: dict, run_id: str, trial: str, trial_rel: str, data_rel: str) -> JobSpec:
    fields = {k: v for k, v in job.items() if k in SPEC_FIELDS}
    fields.update(name=job_name(run_id, trial), namespace=launcher_namespace(job.get("namespace", "")),
                  run_dir=trial_rel, dataset_dir=data_rel, trial=safe_key(trial), owner=launcher_owner())
    return JobSpec(**fields)


def multinode_trial(cfg: Config, dataset_artifact: str, split_file: str, trial: str, out_dir: str, job: dict,
                    run_id: str, apis=None, log=print, poll_s: float = 15.0) -> Path:
    """Stage the trial on the claim, run it as a job of `job['trainer']` (v1 | v2), copy the
    trained model to `out_dir`. `cfg` is the trial's config; `job` the compiled JobSpec fields."""
    render, kind = TRAINERS[check_trainer(job.get("trainer", "v1"))]
    mount = Path(job.get("mount", MOUNT))
    data_rel = stage_dataset(dataset_artifact, mount, run_id, log)
    trial_rel = f"{run_dir(run_id)}/{safe_key(trial)}"
    run = mount / trial_rel
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(split_file, run / "split.csv")
    (run / "params.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    spec = job_spec(job, run_id, trial, trial_rel, data_rel)
    custom, core = apis if apis is not None else cluster_apis()
    Job(render(spec), kind, custom, core, log).run(timeout_s=spec.timeout_s + GRACE_S, poll_s=poll_s)
    shutil.copytree(run / "out", out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINT_DIR))
    return Path(out_dir)


def remove_run(mount: str | Path, run_id: str, log=print) -> None:
    """Remove the run's copies from the claim (its dataset, every trial's folder)."""
    target = Path(mount) / run_dir(run_id)
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        log(f"removed the run's staging folder {target}")
