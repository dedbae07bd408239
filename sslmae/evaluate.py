"""`evaluate(...)`: score a saved model on one subset of a split; write the metric suite.

Writes to out_dir: metrics.json (the task's full suite), per_class.csv (support, AP, P, R,
F1 per label) and scores.npz (y, scores, label_names: for PR curves and reports).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sslmae.bands import check_same
from sslmae.atomic import atomic_file, write_json
from sslmae.config import Config
from sslmae.config.schema import TrackingConfig
from sslmae.datasets.load import load_dataset
from sslmae.inference import predict_scores
from sslmae.loading.loaders import check_task, eval_loader, image_cache, shard_reader, subset_dataset
from sslmae.metrics import DECISIONS, SUITES, per_class_table
from sslmae.outputs import claim_folder, write_marker
from sslmae.progress import Stopwatch
from sslmae.split import SUBSET_GROUPS, read_split, scorable
from sslmae.tracking.eval_log import log_evaluation
from sslmae.tracking.runs import check_tracking
from sslmae.train.model_file import load_model


def evaluate(
    model_path: str | Path,
    out_dir: str | Path,
    dataset_dir: str | Path,
    split_file: str | Path,
    subset: str = "test",
    threshold: float = 0.5,
    batch_size: int = 128,
    num_workers: int = 0,
    cache_dir: str | Path | None = None,
    decode_cache: bool = True,
    stream_cache_bytes: int = 8 * 2**30,
    tracking: TrackingConfig | None = None,
    named: str | None = None,
) -> dict:
    """Metrics of `model_path` on `subset` of `split_file` over `dataset_dir` (a folder, or a shard
    dataset: local or s3://, read shard by shard). cache_dir: where a folder dataset's images are
    decoded once (with `decode_cache`) and a remote shard dataset's shards are cached (at most
    `stream_cache_bytes`). With `tracking` (a `tracking` section that is on) the metrics, tables and
    plots are logged to an MLflow `evaluate` run. The last line names the metrics file, or `named`
    where out_dir is a temporary folder the caller removes."""
    if subset not in SUBSET_GROUPS:
        raise ValueError(f"subset: must be one of {sorted(SUBSET_GROUPS)}, got {subset!r}")
    out = claim_folder(out_dir, "evaluate", legacy=("metrics.json", "per_class.csv", "scores.npz"))
    if tracking is not None:
        check_tracking(tracking)
    model, cfg, label_names, meta = load_model(model_path)
    data = check_task(load_dataset(dataset_dir), cfg.data.task)
    if data.label_names != label_names:
        raise ValueError(f"{data.root}: labels {data.label_names} differ from the model's {label_names}")
    check_same(data.bands, model.bands, str(data.root))
    subsets = scorable(read_split(split_file, data.ids), data.known)
    img_size = cfg.data.img_size  # what the model was trained on
    folder = str(cache_dir) if cache_dir is not None else None
    cache = image_cache(data, img_size, folder if decode_cache else None) if data.shards is None else None
    ds = subset_dataset(data, subsets, SUBSET_GROUPS[subset], img_size, cache=cache,
                        reader=shard_reader(data, folder, stream_cache_bytes))
    if len(ds) == 0:
        raise ValueError(f"subset {subset!r} of {split_file} is empty")
    took = Stopwatch()
    scores, y = predict_scores(model, eval_loader(ds, batch_size, num_workers),
                               desc=f"evaluate: scoring {len(ds)} {subset} images (batches)")
    metrics = SUITES[cfg.data.task](y, scores, threshold)
    table = per_class_table(y, scores, DECISIONS[cfg.data.task](scores, threshold), label_names)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "evaluate")
    with atomic_file(out / "per_class.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_file(out / "scores.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, y=y.astype(np.uint8), scores=scores.astype(np.float32), label_names=np.asarray(label_names))
    write_json(out / "metrics.json", {**metrics, "subset": subset, "threshold": threshold, "task": cfg.data.task})
    if tracking is not None and tracking.enabled:
        log_evaluation(tracking, model_path, subset, metrics, table, y, scores, label_names, out, data.root)
    print(f"evaluated {len(ds)} {subset} images in {took}: {named or out / 'metrics.json'}", file=sys.stderr)
    return metrics


def evaluate_as_configured(cfg: Config, model_path: str | Path, out_dir: str | Path, tracked: bool = True,
                           named: str | None = None) -> dict:
    """`evaluate` with the rest from params: data.dir and data.split_file (the rows), evaluate.split,
    evaluate.threshold and evaluate.batch_size, data.num_workers, the caches (data.cache, data.cache_dir,
    data.stream_cache_bytes), and tracking
    when `tracked`. What `sslmae evaluate`, the promotion gate and the Kubeflow step call, so they
    score the same rows."""
    d, e = cfg.data, cfg.evaluate
    return evaluate(model_path, out_dir, d.dir, d.split_file, subset=e.split, threshold=e.threshold,
                    batch_size=e.batch_size, num_workers=d.num_workers, cache_dir=d.cache_dir, decode_cache=d.cache,
                    stream_cache_bytes=d.stream_cache_bytes, tracking=cfg.tracking if tracked else None, named=named)
