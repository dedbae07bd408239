"""MLflow model registry: register a model as `challenger`, promote it to `champion` only
when it beats the champion on the same frozen test split, load `models:/NAME@ALIAS`.

A version's source is the run artifact folder holding model.pt (sslmae's weights_only
model file); its tags carry the label names, input size, task and test metrics.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sslmae.atomic import write_json
from sslmae.config import Config
from sslmae.metrics import PRIMARY
from sslmae.tracking.runs import log_files, mlflow_run, tracking_uri

CHALLENGER, CHAMPION = "challenger", "champion"


def _client(cfg: Config):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(cfg))
    return MlflowClient()


def register(cfg: Config, model_path: str | Path, metrics: dict, out: str | Path | None = None) -> dict:
    """Log the model in a `register` run, create a registry version, alias it `challenger`."""
    from sslmae.train.checkpoint import load_model

    if not cfg.tracking.enabled:
        raise ValueError("tracking.enabled: the model registry needs MLflow tracking on")
    _, mcfg, labels, meta = load_model(model_path)
    name = cfg.tracking.registered_model
    client = _client(cfg)
    with mlflow_run(cfg, name="register", kind="register") as run:
        log_files({"model": Path(model_path)}, artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="SSL-MAE multi-label classifier (sslmae)")
    tags = {"label_names": json.dumps(labels), "img_size": str(mcfg.data.img_size), "task": mcfg.data.task,
            "size": mcfg.model.size, "encoder": mcfg.model.encoder, **{f"test_{k}": str(v) for k, v in metrics.items()
                                               if isinstance(v, (int, float))}}
    version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    info = {"name": name, "version": int(version.version), "alias": CHALLENGER, "run_id": run.info.run_id,
            "source": source}
    if out is not None:
        write_json(out, info)
    return info


def resolve_model(uri: str, cfg: Config | None = None, workdir: str | Path | None = None) -> Path:
    """A model file for `uri`: a local path as is, or `models:/NAME@ALIAS` / `models:/NAME/VERSION`
    downloaded from the registry (tracking URI from cfg, else the environment)."""
    if not uri.startswith("models:/"):
        return Path(uri)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(cfg) if cfg else (mlflow.get_tracking_uri()))
    dst = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sslmae-model-"))
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except Exception as exc:  # unknown name, alias or version
        raise ValueError(f"{uri}: cannot load from the model registry at {mlflow.get_tracking_uri()}: {exc}") from None
    found = sorted(folder.rglob("model.pt"))
    if not found:
        raise ValueError(f"{uri}: the registered artifacts hold no model.pt")
    return found[0]


def promote(cfg: Config, dataset_dir: str | Path, split_file: str | Path, subset: str = "test",
            out: str | Path | None = None) -> dict:
    """Evaluate challenger and champion on the same split; move `champion` to the challenger
    only if it is better by more than tracking.promote_margin (the first model always wins).
    Both scores and the decision are logged in a `promote` run and returned."""
    import mlflow

    from sslmae.evaluate import evaluate

    name = cfg.tracking.registered_model
    client = _client(cfg)
    challenger = client.get_model_version_by_alias(name, CHALLENGER)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # no champion yet
        champion = None
    metric = PRIMARY[cfg.data.task]
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for role, version in ((CHALLENGER, challenger), (CHAMPION, champion)):
            if version is None:
                continue
            path = resolve_model(f"models:/{name}/{version.version}", cfg, Path(tmp) / role)
            m = evaluate(path, Path(tmp) / f"eval_{role}", subset=subset, dataset_dir=dataset_dir,
                         split_file=split_file)
            scores[role] = m[metric]
    margin = cfg.tracking.promote_margin
    same = champion is not None and champion.version == challenger.version
    promoted = champion is None or (not same and scores[CHALLENGER] > scores[CHAMPION] + margin)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
    decision = {
        "name": name, "metric": metric, "subset": subset, "margin": margin,
        "challenger_version": int(challenger.version), "challenger_score": scores[CHALLENGER],
        "champion_version": int(champion.version) if champion else None,
        "champion_score": scores.get(CHAMPION), "promoted": bool(promoted),
        "champion_now": int(challenger.version) if promoted else int(champion.version),
    }
    with mlflow_run(cfg, name="promote", kind="promote"):
        mlflow.log_metrics({"challenger_score": scores[CHALLENGER], "promoted": float(promoted),
                            **({"champion_score": scores[CHAMPION]} if CHAMPION in scores else {})})
        mlflow.set_tags({"sslmae.decision": "promoted" if promoted else "kept",
                         "sslmae.challenger_version": str(challenger.version),
                         "sslmae.champion_version": str(decision["champion_version"])})
    if out is not None:
        write_json(out, decision)
    return decision
