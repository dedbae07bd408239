"""Release: register a trained model in the MLflow registry as `challenger`, and promote it
to `champion` only when it beats the champion on the same frozen test split (both are
re-evaluated here, on the rows `sslmae evaluate` scores, so this sits above evaluate). The rule
itself is a pure function (`promotion`).

A version's source is an MLflow Model (pyfunc flavor, logged from code: sslmae.serving.pyfunc)
holding model.pt, sslmae's weights_only model file; its tags carry the label names, input size,
task and test metrics.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from sslmae.atomic import write_json
from sslmae.config import Config, to_dict
from sslmae.datasets.load import load_dataset
from sslmae.evaluate import evaluate_as_configured
from sslmae.metrics import PRIMARY
from sslmae.redact import redacted
from sslmae.seen import count_seen
from sslmae.split import SUBSET_GROUPS, read_split, scorable
from sslmae.tracking.data_identity import DataIdentity, model_name
from sslmae.tracking.models import CHALLENGER, CHAMPION, resolve_model
from sslmae.digest import file_sha256
from sslmae.tracking.lineage import training_run
from sslmae.tracking.mlflow_model import log_mlflow_model
from sslmae.tracking.runs import (check_tracking, client, flat_params, log_metrics, mlflow_module,
                                  mlflow_run)
from sslmae.train.model_file import load_model


WEIGHTS_TAG = "sslmae.weights_sha256"


def _logged_model(mlflow_client, run_id: str) -> str | None:
    """The id of the MLflow Model that run `run_id` logged (its latest), if any."""
    outputs = getattr(mlflow_client.get_run(run_id), "outputs", None)
    models = list(getattr(outputs, "model_outputs", None) or [])
    return models[-1].model_id if models else None


def _model_source(cfg: Config, model_path: Path, mcfg: Config, labels: list[str]) -> tuple[str, str, str]:
    """(source URI, run id, MLflow Model id) for a new version: the MLflow Model the training run
    logged with the file inside (lineage, and the weights stored once). A training run from before
    sslmae logged MLflow Models gets one now; a file with no training run on record, a `register`
    run that logs it with the model's params."""
    mlflow_client = client(cfg.tracking)
    run_id = training_run(model_path)
    if run_id is not None:
        try:
            model_id = _logged_model(mlflow_client, run_id) or \
                log_mlflow_model(cfg.tracking, run_id, model_path, labels, mcfg.data.img_size)
            return f"models:/{model_id}", run_id, model_id
        except Exception:  # recorded in another tracking store, or deleted since
            pass
    with mlflow_run(cfg.tracking, name="register", kind="register") as run:
        mlflow_module().log_params(flat_params(redacted(to_dict(mcfg))))
        model_id = log_mlflow_model(cfg.tracking, run.info.run_id, model_path, labels, mcfg.data.img_size)
        return f"models:/{model_id}", run.info.run_id, model_id


def _version_with(mlflow_client, name: str, sha256: str):
    for version in mlflow_client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(WEIGHTS_TAG) == sha256:
            return version
    return None


def register(cfg: Config, model_path: str | Path, metrics: dict, identity: DataIdentity,
             out: str | Path | None = None) -> dict:
    """Make the model a version of the registered model of its data (`identity`; the rule is
    sslmae.tracking.data_identity's), aliased `challenger`. The version's source is the training run
    that made it; weights that are already a version register nothing new (that version is
    reported, and becomes the challenger)."""
    if not cfg.tracking.enabled:
        raise ValueError("tracking.enabled: the model registry needs MLflow tracking on")
    check_tracking(cfg.tracking)
    model_path = Path(model_path)
    _, mcfg, labels, meta = load_model(model_path)
    mlflow_client = client(cfg.tracking)
    name = model_name(mlflow_client, cfg.tracking.registered_model, identity, create=True)
    sha256 = file_sha256(model_path)
    version = _version_with(mlflow_client, name, sha256)
    created = version is None
    if created:
        source, run_id, model_id = _model_source(cfg, model_path, mcfg, labels)
        tags = {"label_names": json.dumps(labels), "img_size": str(mcfg.data.img_size), "task": mcfg.data.task,
                "backbone": mcfg.model.backbone, "variant": mcfg.model.variant, WEIGHTS_TAG: sha256,
                **identity.tags(), **{f"test_{k}": str(v) for k, v in metrics.items() if isinstance(v, (int, float))}}
        version = mlflow_client.create_model_version(name, source=source, run_id=run_id, tags=tags, model_id=model_id)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version.version)
    info = {"name": name, "version": int(version.version), "alias": CHALLENGER, "run_id": version.run_id,
            "source": version.source, "created": created}
    if out is not None:
        write_json(out, info)
    return info


def promotion(challenger: float, champion: float | None, margin: float, same_version: bool) -> bool:
    """Does the challenger become champion? Always when there is no champion; never when it is the
    champion already; else only when its score beats the champion's by more than `margin`."""
    if champion is None:
        return True
    return not same_version and challenger > champion + margin


def scored_ids(cfg: Config) -> list[str]:
    """The ids of the rows `sslmae evaluate` scores with these params (data.dir, data.split_file,
    evaluate.split)."""
    data = load_dataset(cfg.data.dir)
    subsets = scorable(read_split(cfg.data.split_file, data.ids), data.known)
    return [data.ids[i] for i in np.flatnonzero(np.isin(subsets, SUBSET_GROUPS[cfg.evaluate.split]))]


def overlap(meta: dict, ids: list[str]) -> int | None:
    """How many of `ids` the model trained on (`trained_on` in its model file's meta); None for a
    model file made before sslmae recorded them."""
    if "trained_on" not in meta:
        return None
    return count_seen(meta["trained_on"].numpy().view(np.uint64), ids)


def overlap_refusal(overlaps: dict[str, int | None], versions: dict[str, int], scored: int, subset: str,
                    allowed: bool) -> str | None:
    """Why the gate must not compare, or None: a model that trained on images it would be scored on."""
    bad = {role: n for role, n in overlaps.items() if n}
    if not bad or allowed:
        return None
    said = ", ".join(f"{role} v{versions[role]} trained on {n} of the {scored} {subset} images" for role, n in bad.items())
    return (f"promote: {said}: its score would be inflated; keep the split frozen (split.frozen: true) so test "
            "images never train, or pass --allow-overlap (tracking.allow_overlap) to compare anyway")


def label_refusal(labels: dict[str, list[str]], versions: dict[str, int]) -> str | None:
    """Why the gate cannot compare, or None: the champion and the challenger predict different labels."""
    if CHAMPION not in labels or labels[CHAMPION] == labels[CHALLENGER]:
        return None
    added = [n for n in labels[CHALLENGER] if n not in labels[CHAMPION]]
    removed = [n for n in labels[CHAMPION] if n not in labels[CHALLENGER]]
    change = "; ".join(p for p in (f"added {added}" if added else "", f"removed {removed}" if removed else "",
                                   "reordered" if not added and not removed else "") if p)
    return (f"promote: challenger v{versions[CHALLENGER]} and champion v{versions[CHAMPION]} predict different "
            f"labels ({change}): their scores are not comparable; move the champion alias by hand once the "
            "challenger is checked (MlflowClient().set_registered_model_alias)")


def promote(cfg: Config, identity: DataIdentity, out: str | Path | None = None) -> dict:
    """Evaluate the challenger and the champion of `identity`'s data on the rows `sslmae evaluate`
    scores (data.dir, data.split_file, evaluate.split); move `champion` by `promotion` with
    tracking.promote_margin. Both scores and the decision are logged in a `promote` run and returned."""
    tracking = cfg.tracking
    check_tracking(tracking)
    mlflow_client = client(tracking)
    name = model_name(mlflow_client, tracking.registered_model, identity)
    try:
        challenger = mlflow_client.get_model_version_by_alias(name, CHALLENGER)
    except Exception:  # MLflow: no such registered model or alias
        raise ValueError(f"promote: {name} (the registered model of this data, key {identity.short}) has no "
                         "@challenger: register a model of this data first (sslmae register)") from None
    try:
        champion = mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # no champion yet
        champion = None
    metric = PRIMARY[cfg.data.task]
    scores, overlaps, labels, versions = {}, {}, {}, {}
    ids = scored_ids(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for role, version in ((CHALLENGER, challenger), (CHAMPION, champion)):
            if version is None:
                continue
            paths[role] = resolve_model(f"models:/{name}/{version.version}", tracking, Path(tmp) / role)
            _, _, labels[role], meta = load_model(paths[role])  # one read: labels and trained-on images
            versions[role], overlaps[role] = int(version.version), overlap(meta, ids)
        for refusal in (label_refusal(labels, versions),
                        overlap_refusal(overlaps, versions, len(ids), cfg.evaluate.split, tracking.allow_overlap)):
            if refusal:
                raise ValueError(refusal)
        for role, path in paths.items():
            m = evaluate_as_configured(cfg, path, Path(tmp) / f"eval_{role}", tracked=False,
                                       named=f"models:/{name}/{versions[role]} ({role})")
            scores[role] = m[metric]
    margin = tracking.promote_margin
    same = champion is not None and champion.version == challenger.version
    promoted = promotion(scores[CHALLENGER], scores.get(CHAMPION), margin, same)
    if promoted:
        mlflow_client.set_registered_model_alias(name, CHAMPION, challenger.version)
    decision = {
        "name": name, "data_key": identity.key, "metric": metric, "subset": cfg.evaluate.split, "margin": margin,
        "challenger_version": int(challenger.version), "challenger_score": scores[CHALLENGER],
        "champion_version": int(champion.version) if champion else None,
        "champion_score": scores.get(CHAMPION), "promoted": bool(promoted),
        "champion_now": int(challenger.version) if promoted else int(champion.version),
        "overlap": overlaps,  # per model: scored images it trained on (None: not recorded in its file)
    }
    tags = {"sslmae.decision": "promoted" if promoted else "kept", "sslmae.challenger_version": str(challenger.version),
            "sslmae.champion_version": str(decision["champion_version"])}
    with mlflow_run(tracking, name="promote", kind="promote", tags=tags) as run:
        log_metrics(tracking, run.info.run_id, {"challenger_score": scores[CHALLENGER], "promoted": float(promoted),
                                                **({"champion_score": scores[CHAMPION]} if CHAMPION in scores else {}),
                                                **{f"overlap_{r}": float(n) for r, n in overlaps.items() if n is not None}})
    if out is not None:
        write_json(out, decision)
    return decision
