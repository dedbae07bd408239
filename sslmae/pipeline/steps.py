"""One function per pipeline step, for the Kubeflow components: each takes the params as a
dict (the shape of params.yaml), points the paths at the step's artifacts, and calls one
library function. The components stay a few lines each; everything here is testable
without Kubeflow."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from sslmae.atomic import write_json
from sslmae.config import Config, from_dict, to_dict, updated
from sslmae.datasets.ingest import ingest
from sslmae.datasets.sources import fetch_file_if_exists, publish_file
from sslmae.evaluate import evaluate
from sslmae.grid import select, trial_config, trial_names
from sslmae.pipeline import pytorchjob
from sslmae.release import promote, register
from sslmae.report.build import build_report
from sslmae.split import split_dataset
from sslmae.tracking.grid_log import log_report
from sslmae.tracking.runs import DEFAULT_URI, tracking_uri
from sslmae.train.run import train

TRIAL_FILE = "trial.json"


def config_for(params: dict, **paths: str) -> Config:
    """Validated Config from `params` with dotted-path overrides, e.g. data__dir='/x' -> data.dir."""
    data = copy.deepcopy(params)
    for key, value in paths.items():
        section, name = key.split("__", 1)
        data.setdefault(section, {})[name] = value
    return from_dict(data)


def plan_trials(params: dict) -> list[str]:
    return trial_names(config_for(params))


def ingest_step(params: dict, source: str, out_dir: str) -> dict:
    cfg = config_for(params)
    res = ingest(source or cfg.data.source, out_dir, layout=cfg.data.layout, on_bad=cfg.data.on_bad)
    return {"n_images": res.n_images, "layout": res.layout, "labels": len(res.label_names)}


def split_step(params: dict, dataset_dir: str, out_file: str, frozen_split: str = "") -> dict:
    """The split; with `frozen_split` (a path or s3:// URI) images split by an earlier run keep
    their side, and the new split is written back there for the next run (a test set frozen
    across scheduled retrainings)."""
    s = config_for(params).split
    with tempfile.TemporaryDirectory() as tmp:
        earlier = Path(tmp) / "earlier.csv"
        keep = earlier if frozen_split and fetch_file_if_exists(frozen_split, earlier) else None
        table = split_dataset(dataset_dir, out_file, fraction=s.fraction, val=s.val, test=s.test, seed=s.seed,
                              keep_file=keep)
    if frozen_split:
        publish_file(Path(out_file), frozen_split)
    return {**table["subset"].value_counts().to_dict(), "kept_from_earlier": keep is not None}


def trial_step(params: dict, dataset_dir: str, split_file: str, trial: str, out_dir: str) -> dict:
    """One grid trial trained into out_dir (resumes there if the pod restarted)."""
    cfg = updated(trial_config(config_for(params, data__dir=dataset_dir, data__split_file=split_file), trial),
                  {"train.out_dir": out_dir})
    result = train(cfg)
    if result.rank_zero:
        write_json(Path(out_dir) / TRIAL_FILE, {"trial": trial})
    return result.val_metrics or {}


def select_step(params: dict, trial_dirs: list[str], out_dir: str) -> dict:
    dirs = {json.loads((Path(d) / TRIAL_FILE).read_text())["trial"]: Path(d) for d in trial_dirs}
    return select(config_for(params), out_dir, dirs)


def evaluate_step(params: dict, model_file: str, dataset_dir: str, split_file: str, out_dir: str) -> dict:
    cfg = config_for(params)
    e = cfg.evaluate
    return evaluate(model_file, out_dir, subset=e.split, dataset_dir=dataset_dir, split_file=split_file,
                    threshold=e.threshold, batch_size=e.batch_size, num_workers=cfg.data.num_workers, tracking=cfg)


def register_promote_step(params: dict, model_file: str, metrics_file: str, dataset_dir: str, split_file: str,
                          out_dir: str) -> dict:
    """Register the selected model as challenger, then the promotion gate."""
    cfg = config_for(params)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and tracking_uri(cfg) == DEFAULT_URI:
        # a registry in the pod's own sqlite file would vanish with the pod
        raise ValueError("no MLflow tracking server: set MLFLOW_TRACKING_URI (secret sslmae-mlflow) or tracking.uri")
    out = Path(out_dir)
    info = register(cfg, model_file, json.loads(Path(metrics_file).read_text()), out=out / "registered.json")
    decision = promote(cfg, dataset_dir, split_file, cfg.evaluate.split, out=out / "promotion.json")
    return {**decision, "registered_version": info["version"]}


def report_step(select_dir: str, eval_dir: str, out_file: str, params: dict | None = None) -> str:
    """The HTML report, also logged to the grid's MLflow parent run when params track."""
    page = build_report(out_file, grid_dir=select_dir, eval_dir=eval_dir)
    if params is not None:
        log_report(config_for(params), Path(select_dir), page)
    return str(page)


def multinode_trial_step(params: dict, dataset_dir: str, split_file: str, trial: str, out_dir: str,
                         spec_fields: dict) -> dict:
    """One grid trial as a PyTorchJob: stage inputs on the shared claim, run, copy the model back."""
    spec = pytorchjob.JobSpec(**spec_fields)
    run = Path(spec.mount) / spec.run_dir
    cfg = trial_config(config_for(params), trial)
    shutil.copytree(dataset_dir, run / "dataset", dirs_exist_ok=True)
    shutil.copyfile(split_file, run / "split.csv")
    (run / "params.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    pytorchjob.run(pytorchjob.render(spec))
    shutil.copytree(run / "out", out_dir, dirs_exist_ok=True)
    write_json(Path(out_dir) / TRIAL_FILE, {"trial": trial})
    return json.loads((Path(out_dir) / "metrics.json").read_text())
