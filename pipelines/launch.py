"""`sslmae pipeline compile | run-local | submit | schedule`: the Kubeflow entry points,
beside the DAG they compile and submit (`pipelines.training`)."""

from __future__ import annotations

import os
from pathlib import Path

import kfp
import kfp.local
from kfp import compiler

from pipelines.training import Resources, build_pipeline
from sslmae.atomic import atomic_file
from sslmae.config import Config, to_dict

# run-local shrinks every knob so the whole DAG runs on a laptop CPU in a few minutes
LOCAL_OVERRIDES = ["synth.n=96", "synth.size=32", "data.img_size=32", "model.size=micro", "model.patch_size=4",
                   "model.mask_patch_size=8", "train.epochs=2", "train.batch_size=8", "train.progress_bar=false",
                   "split.fraction=0.3"]


def pipeline_func(cfg: Config, parallelism: int = 4, gpus: int = 1, nodes: int = 1):
    return build_pipeline(to_dict(cfg), Resources(parallelism=parallelism, gpus=gpus, nodes=nodes))


def compile_pipeline(cfg: Config, out: str | Path, parallelism: int = 4, gpus: int = 1, nodes: int = 1) -> Path:
    out = Path(out)
    with atomic_file(out) as tmp:
        compiler.Compiler().compile(pipeline_func(cfg, parallelism, gpus, nodes), str(tmp.with_suffix(".yaml")))
        tmp.with_suffix(".yaml").replace(tmp)
    return out


def run_local(cfg: Config, root: str | Path, source: str) -> None:
    """The whole DAG with kfp.local's SubprocessRunner (no cluster, no containers)."""
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    func = pipeline_func(cfg, parallelism=2, gpus=0)
    func(source=source)


def client(host: str | None):
    host = host or os.environ.get("KFP_HOST")
    if not host:
        raise ValueError("no Kubeflow Pipelines host: pass --host or set KFP_HOST")
    return kfp.Client(host=host)


def submit(cfg: Config, host: str | None, experiment: str, source: str, parallelism: int = 4, gpus: int = 1,
           nodes: int = 1, frozen_split: str = "") -> str:
    run = client(host).create_run_from_pipeline_func(pipeline_func(cfg, parallelism, gpus, nodes),
                                                     arguments={"source": source, "frozen_split": frozen_split},
                                                     experiment_name=experiment)
    return run.run_id


def schedule(cfg: Config, host: str | None, experiment: str, cron: str, source: str, package: str | Path,
             parallelism: int = 4, gpus: int = 1, nodes: int = 1, frozen_split: str = "") -> str:
    """A recurring run: retrain on whatever `source` holds at each tick; the promotion gate
    decides whether the new model replaces the champion."""
    c = client(host)
    compile_pipeline(cfg, package, parallelism, gpus, nodes)
    exp = c.create_experiment(experiment)
    job = c.create_recurring_run(experiment_id=exp.experiment_id, job_name=f"{experiment}-retrain",
                                 cron_expression=cron, pipeline_package_path=str(package),
                                 params={"source": source, "frozen_split": frozen_split}, max_concurrency=1,
                                 no_catchup=True)
    return job.recurring_run_id
