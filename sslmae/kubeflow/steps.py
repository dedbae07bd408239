"""One function per pipeline step, for the Kubeflow components: each takes the params as a
dict (the shape of params.yaml), points the paths at the step's artifacts (`updated`: the
overrides' route), and calls one library function. The components stay a few lines each; everything here is testable
without Kubeflow.

With a store (`store`: s3://bucket/prefix or a mounted folder, sslmae.datasets.store) the
dataset travels by reference (sslmae.kubeflow.dataref) and trial checkpoints outlive their pod
(sslmae.kubeflow.checkpoints); without one the dataset artifact is the dataset itself."""

from __future__ import annotations

import functools
import json
import os
import tempfile
import uuid
from pathlib import Path

from sslmae.atomic import write_json
from sslmae.bands import read_model_bands
from sslmae.config import Config, from_dict, updated
from sslmae.datasets.ingest import ingest
from sslmae.datasets.sources import fetch_file_if_exists, publish_file, source_kind
from sslmae.evaluate import evaluate_as_configured
from sslmae.grid import select, trial_config, trial_names
from sslmae.kubeflow import dataref
from sslmae.kubeflow.deploy import Deployer
from sslmae.kubeflow.inference_service import ServiceSpec
from sslmae.kubeflow.k8sjob import cluster_apis, launcher_namespace
from sslmae.kubeflow.checkpoints import TrialCheckpoints, run_area, safe_key
from sslmae.kubeflow.multinode import multinode_trial, remove_run
from sslmae.datasets.store import Store, check_store
from sslmae.redact import redacted_output
from sslmae.release import promote, register
from sslmae.report.build import build_report
from sslmae.split import history_file, split_dataset
from sslmae.tracking.data_identity import data_identity, split_key
from sslmae.tracking.grid_log import log_report
from sslmae.tracking.runs import DEFAULT_URI, tracking_uri
from sslmae.train.run import train

TRIAL_FILE = "trial.json"


def masked_output(step):
    """A step whose printed lines (and its libraries') show credentials in URIs masked, as the
    CLI's do: a pod's log is read by whoever can read the namespace."""

    @functools.wraps(step)
    def run(*args, **kwargs):
        with redacted_output():
            return step(*args, **kwargs)

    return run
SCRATCH = "/scratch"  # the pod's scratch volume (an emptyDir with a size limit, pipelines/training.py)


def scratch_dir() -> Path:
    """Where a step puts what it fetched: the pod's scratch volume, else the system temp dir."""
    if os.path.isdir(SCRATCH) and os.access(SCRATCH, os.W_OK):
        return Path(SCRATCH)
    return Path(tempfile.gettempdir()) / "sslmae-scratch"


def weights_caches() -> None:
    """Pretrained weights (model.pretrained) cached on the scratch volume: HF_HOME and TORCH_HOME
    under it, each only when the pod does not set it (a pre-staged cache mounted elsewhere wins)."""
    for var, sub in (("HF_HOME", "huggingface"), ("TORCH_HOME", "torch")):
        if not os.environ.get(var):
            os.environ[var] = str(scratch_dir() / "weights" / sub)


def local_dataset(artifact: str) -> str:
    """The dataset behind a dataset artifact: a local folder (fetched when it is a reference), or
    a shard dataset's URI in the store (streamed, never fetched whole)."""
    return str(dataref.resolve(artifact, scratch_dir()))


def config_for(params: dict, paths: dict[str, str] | None = None) -> Config:
    """The validated Config of `params` with dotted keys pointed at the step's artifacts:
    {'data.dir': '/x'}. In a pod, a relative data.cache_dir is on its scratch volume."""
    cfg = updated(from_dict(params), paths or {})
    if str(scratch_dir()) == SCRATCH and not Path(cfg.data.cache_dir).is_absolute():
        cfg = updated(cfg, {"data.cache_dir": f"{SCRATCH}/cache"})
    return cfg


def plan_trials(params: dict) -> list[str]:
    return trial_names(config_for(params))


def pick_source(source: str, cfg: Config) -> str:
    """`source`, else data.source; an empty source never falls back to a local path that is
    not there (data/synth exists on a workstation, not in a pod)."""
    if source:
        return source
    fallback = cfg.data.source
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if source_kind(fallback) not in ("s3", "url") and (in_pod or not Path(fallback).exists()):
        raise ValueError(f"no dataset source: the pipeline parameter `source` is empty and data.source "
                         f"({fallback}) is not there{' in this pod' if in_pod else ''}; "
                         "run with source=s3://bucket/prefix (or a path mounted in the pod)")
    return fallback


@masked_output
def ingest_step(params: dict, source: str, out_dir: str, store: str = "", unlabeled: list | None = None) -> dict:
    """The canonical dataset into out_dir; with a store, published there by digest and out_dir
    holds only the reference. The shard format (data.format) goes straight into the store, shard by
    shard: the pod's scratch never holds the dataset. The pool: `unlabeled` (the pipeline input)
    where `source` is given, as `sslmae ingest SOURCE --unlabeled` (params' pool belongs to params'
    source), else params' data.unlabeled."""
    cfg = config_for(params)
    src, store = pick_source(source, cfg), check_store(store)
    pool = list(unlabeled or []) if source else cfg.data.unlabeled
    opts = {"layout": cfg.data.layout, "on_bad": cfg.data.on_bad, "format": cfg.data.format,
            "shard_bytes": cfg.data.shard_bytes, "unlabeled": pool, "unlabeled_rows": cfg.data.unlabeled_rows,
            "bands": cfg.data.bands}
    if not store:
        res = ingest(src, out_dir, **opts)
        return {"n_images": res.n_images, "layout": res.layout, "labels": len(res.label_names), **_pool_size(res)}
    if cfg.data.format == "shards":
        incoming = Store(store).child("datasets", "incoming", uuid.uuid4().hex)
        res = ingest(src, incoming.uri, **opts)
        ref = dataref.adopt(incoming, Store(store))
        dataref.write_reference(out_dir, ref)
        write_json(Path(out_dir) / dataref.REPORT, res.report)
    else:
        with tempfile.TemporaryDirectory(dir=_made(scratch_dir())) as tmp:
            res = ingest(src, Path(tmp) / "dataset", **opts)
            ref = dataref.publish(res.out, Store(store))
            dataref.write_reference(out_dir, ref, res.out)
    return {"n_images": res.n_images, "layout": res.layout, "labels": len(res.label_names), "digest": ref["digest"],
            "dataset_uri": ref["uri"], "bytes": ref["bytes"], **_pool_size(res)}


def _pool_size(res) -> dict:
    """{"n_pool": images of the unlabeled pool} when the dataset has one."""
    return {"n_pool": res.report["pool"]["n_images"]} if "pool" in res.report else {}


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@masked_output
def split_step(params: dict, dataset_dir: str, out_file: str, frozen_split: str = "", store: str = "") -> dict:
    """The split. Images split by an earlier run keep their side (a test set frozen across
    scheduled retrainings) when `frozen_split` (a path or s3:// URI) names the table to carry
    forward, or, with split.frozen (default) and a store, `<store>/splits/<experiment>/split.csv`;
    the new table and its history (`split.history.csv`) are written back there for the next run."""
    cfg = config_for(params)
    s, store = cfg.split, check_store(store)
    if not frozen_split and store and s.frozen:
        frozen_split = f"{store.rstrip('/')}/splits/{safe_key(cfg.tracking.experiment)}/split.csv"
    dataset_dir = local_dataset(dataset_dir)
    with tempfile.TemporaryDirectory() as tmp:
        earlier, history = Path(tmp) / "earlier.csv", Path(tmp) / "split.history.csv"
        folder, _, name = frozen_split.rpartition("/")  # a path or a URI: the history lies beside the table
        remote_history = "" if not name else f"{folder}/{history_file(name).name}" if folder else history_file(name).name
        keep = earlier if frozen_split and fetch_file_if_exists(frozen_split, earlier) else None
        if keep is not None:
            fetch_file_if_exists(remote_history, history)
        table = split_dataset(dataset_dir, out_file, fraction=s.fraction, val=s.val, test=s.test, seed=s.seed,
                              keep_file=keep, history=history if frozen_split else None)
        if frozen_split:
            publish_file(Path(out_file), frozen_split)
            publish_file(history, remote_history)
        # the gate's "same data" (sslmae.tracking.data_identity): the history stays in the store, so the
        # key travels to register_promote_step in the split artifact's metadata
        key = split_key(out_file, history if frozen_split else None)
    return {**table["subset"].value_counts().to_dict(), "kept_from_earlier": keep is not None,
            "frozen_split": frozen_split, "data_key": key}


@masked_output
def trial_step(params: dict, dataset_dir: str, split_file: str, trial: str, out_dir: str, store: str = "",
               run_id: str = "") -> dict:
    """One grid trial trained into out_dir. It resumes there if the container restarted; with a
    store it also resumes in a new pod (a KFP retry), from the checkpoints stored under the run
    and trial, which it keeps up to date while it trains."""
    weights_caches()
    dataset_dir = local_dataset(dataset_dir)
    cfg = updated(trial_config(config_for(params, {"data.dir": dataset_dir, "data.split_file": split_file}), trial),
                  {"train.out_dir": out_dir})
    if check_store(store):
        ckpts = TrialCheckpoints(Store(store), run_id or "no-run-id", trial)
        ckpts.restore(out_dir)
        with ckpts.mirrored(out_dir):
            result = train(cfg)
    else:
        result = train(cfg)
    if result.rank_zero:
        write_json(Path(out_dir) / TRIAL_FILE, {"trial": trial})
    return result.val_metrics or {}


@masked_output
def select_step(params: dict, trial_dirs: list[str], out_dir: str, store: str = "", run_id: str = "",
                claim: str = "") -> dict:
    """The best trial; then, every trial being done, the run's checkpoints in the store and its
    staging folder on the claim (multi-node) are removed."""
    dirs = {json.loads((Path(d) / TRIAL_FILE).read_text())["trial"]: Path(d) for d in trial_dirs}
    chosen = select(config_for(params), out_dir, dirs)
    if check_store(store):
        area = run_area(Store(store), run_id or "no-run-id")
        print(f"removed {area.remove()} stored checkpoint file(s) of this run from {area.uri}")
    if claim:
        remove_run(claim, run_id)
    return chosen


@masked_output
def evaluate_step(params: dict, model_file: str, dataset_dir: str, split_file: str, out_dir: str) -> dict:
    cfg = config_for(params, {"data.dir": local_dataset(dataset_dir), "data.split_file": split_file})
    return evaluate_as_configured(cfg, model_file, out_dir)


@masked_output
def register_promote_step(params: dict, model_file: str, metrics_file: str, dataset_dir: str, split_file: str,
                          out_dir: str, data_key: str = "") -> dict:
    """Register the selected model as challenger, then the promotion gate, both in the registered
    model of its data: `data_key` from the split step (else the split table's test set)."""
    cfg = config_for(params)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and tracking_uri(cfg.tracking) == DEFAULT_URI:
        # a registry in the pod's own sqlite file would vanish with the pod
        raise ValueError("no MLflow tracking server: set MLFLOW_TRACKING_URI (secret sslmae-mlflow) or tracking.uri")
    out = Path(out_dir)
    dataset_dir = local_dataset(dataset_dir)
    identity = data_identity(dataset_dir, split_file, key=data_key)
    info = register(cfg, model_file, json.loads(Path(metrics_file).read_text()), identity,
                    out=out / "registered.json")
    gate = updated(cfg, {"data.dir": dataset_dir, "data.split_file": split_file})
    decision = promote(gate, identity, out=out / "promotion.json")
    return {**decision, "registered_version": info["version"]}


@masked_output
def report_step(select_dir: str, eval_dir: str, out_file: str, params: dict | None = None, dataset_dir: str = "") -> str:
    """The HTML report (with the dataset: sample tiles of a model with bands), also logged to the grid's
    MLflow parent run when params track. The dataset is resolved (fetched, when a reference to a
    folder dataset) only for a model with bands."""
    model = Path(select_dir) / "model.pt"
    with_bands = bool(dataset_dir) and model.is_file() and read_model_bands(model) is not None
    page = build_report(out_file, grid_dir=select_dir, eval_dir=eval_dir,
                        dataset=local_dataset(dataset_dir) if with_bands else None)
    if params is not None:
        log_report(config_for(params).tracking, Path(select_dir), page)
    return str(page)


@masked_output
def multinode_trial_step(params: dict, dataset_dir: str, split_file: str, trial: str, out_dir: str,
                         job: dict, run_id: str = "", apis=None, poll_s: float = 15.0) -> dict:
    """One grid trial as a PyTorchJob (job['trainer'] v1) or TrainJob (v2) over the shared claim
    (sslmae.kubeflow.multinode); the trained model lands in out_dir."""
    cfg = trial_config(config_for(params), trial)
    multinode_trial(cfg, dataset_dir, split_file, trial, out_dir, job, run_id or "no-run-id", apis=apis,
                    poll_s=poll_s)
    write_json(Path(out_dir) / TRIAL_FILE, {"trial": trial})
    return json.loads((Path(out_dir) / "metrics.json").read_text())


@masked_output
def deploy_step(decision_dir: str, service: dict, out_file: str, custom=None) -> dict:
    """Make the InferenceService serve the champion the gate left (promotion.json in `decision_dir`):
    a rollout when the champion moved, nothing when the service already serves it. `service`: the
    ServiceSpec fields (no model) plus `namespace` (default: this pod's), `canary` (0: none) and
    `timeout_s`. `custom`: a CustomObjectsApi (default: the pod's service account)."""
    decision = json.loads((Path(decision_dir) / "promotion.json").read_text())
    opts = dict(service)
    canary, timeout_s = opts.pop("canary", 0) or None, float(opts.pop("timeout_s", 900))
    namespace = launcher_namespace(opts.pop("namespace", ""))
    spec = ServiceSpec(model=f"models:/{decision['name']}/{decision['champion_now']}", **opts)
    result = Deployer(custom or cluster_apis()[0], namespace).deploy(spec, canary, timeout_s)
    write_json(out_file, result)
    return result
