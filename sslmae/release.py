"""Release: register a trained model in the MLflow registry as `challenger`, and promote it
to `champion` only when it beats the champion on the same frozen test split (both are
re-evaluated here, so this sits above evaluate).

A version's source is the run artifact folder holding model.pt (sslmae's weights_only
model file); its tags carry the label names, input size, task and test metrics.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sslmae.atomic import write_json
from sslmae.config import Config
from sslmae.evaluate import evaluate
from sslmae.metrics import PRIMARY
from sslmae.tracking.models import CHALLENGER, CHAMPION, resolve_model
from sslmae.tracking.runs import client, log_files, log_metrics, mlflow_run
from sslmae.train.checkpoint import load_model


def register(cfg: Config, model_path: str | Path, metrics: dict, out: str | Path | None = None) -> dict:
    """Log the model in a `register` run, create a registry version, alias it `challenger`."""
    if not cfg.tracking.enabled:
        raise ValueError("tracking.enabled: the model registry needs MLflow tracking on")
    _, mcfg, labels, meta = load_model(model_path)
    name = cfg.tracking.registered_model
    mlflow_client = client(cfg)
    with mlflow_run(cfg, name="register", kind="register") as run:
        log_files(cfg, run.info.run_id, {"model": Path(model_path)}, artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        mlflow_client.create_registered_model(name, description="SSL-MAE multi-label classifier (sslmae)")
    tags = {"label_names": json.dumps(labels), "img_size": str(mcfg.data.img_size), "task": mcfg.data.task,
            "size": mcfg.model.size, "encoder": mcfg.model.encoder, **{f"test_{k}": str(v) for k, v in metrics.items()
                                               if isinstance(v, (int, float))}}
    version = mlflow_client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version.version)
    info = {"name": name, "version": int(version.version), "alias": CHALLENGER, "run_id": run.info.run_id,
            "source": source}
    if out is not None:
        write_json(out, info)
    return info


def promote(cfg: Config, dataset_dir: str | Path, split_file: str | Path, subset: str = "test",
            out: str | Path | None = None) -> dict:
    """Evaluate challenger and champion on the same split; move `champion` to the challenger
    only if it is better by more than tracking.promote_margin (the first model always wins).
    Both scores and the decision are logged in a `promote` run and returned."""
    name = cfg.tracking.registered_model
    mlflow_client = client(cfg)
    challenger = mlflow_client.get_model_version_by_alias(name, CHALLENGER)
    try:
        champion = mlflow_client.get_model_version_by_alias(name, CHAMPION)
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
        mlflow_client.set_registered_model_alias(name, CHAMPION, challenger.version)
    decision = {
        "name": name, "metric": metric, "subset": subset, "margin": margin,
        "challenger_version": int(challenger.version), "challenger_score": scores[CHALLENGER],
        "champion_version": int(champion.version) if champion else None,
        "champion_score": scores.get(CHAMPION), "promoted": bool(promoted),
        "champion_now": int(challenger.version) if promoted else int(champion.version),
    }
    tags = {"sslmae.decision": "promoted" if promoted else "kept", "sslmae.challenger_version": str(challenger.version),
            "sslmae.champion_version": str(decision["champion_version"])}
    with mlflow_run(cfg, name="promote", kind="promote", tags=tags) as run:
        log_metrics(cfg, run.info.run_id, {"challenger_score": scores[CHALLENGER], "promoted": float(promoted),
                                           **({"champion_score": scores[CHAMPION]} if CHAMPION in scores else {})})
    if out is not None:
        write_json(out, decision)
    return decision
