"""`evaluate(...)`: score a saved model on one subset of a split; write the metric suite.

Writes to out_dir: metrics.json (the task's full suite), per_class.csv (support, AP, P, R,
F1 per label) and scores.npz (y, scores, label_names: for PR curves and reports).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sslmae.atomic import atomic_file, write_json
from sslmae.config import Config
from sslmae.datasets.load import load_dataset
from sslmae.inference import predict_scores
from sslmae.metrics import DECISIONS, SUITES, per_class_table
from sslmae.outputs import claim_folder, write_marker
from sslmae.progress import Stopwatch
from sslmae.split import SUBSET_GROUPS, read_split
from sslmae.tracking.eval_log import log_evaluation
from sslmae.tracking.runs import check_tracking
from sslmae.train.checkpoint import load_model
from sslmae.train.datamodule import check_task, dataset_cache, eval_loader, subset_dataset



def evaluate(
    model_path: str | Path,
    out_dir: str | Path,
    subset: str = "test",
    dataset_dir: str | Path | None = None,
    split_file: str | Path | None = None,
    threshold: float = 0.5,
    batch_size: int = 128,
    num_workers: int = 0,
    tracking: Config | None = None,
    named: str | None = None,
) -> dict:
    """Metrics of `model_path` on `subset`. dataset_dir / split_file default to those the
    model was trained with. With `tracking` (a Config whose tracking is on) the metrics,
    tables and plots are logged to an MLflow `evaluate` run. The last line names the metrics
    file, or `named` where out_dir is a temporary folder the caller removes."""
    if subset not in SUBSET_GROUPS:
        raise ValueError(f"subset: must be one of {sorted(SUBSET_GROUPS)}, got {subset!r}")
    out = claim_folder(out_dir, "evaluate", legacy=("metrics.json", "per_class.csv", "scores.npz"))
    if tracking is not None:
        check_tracking(tracking)
    model, cfg, label_names, meta = load_model(model_path)
    data = check_task(load_dataset(dataset_dir or cfg.data.dir), cfg.data.task)
    if data.label_names != label_names:
        raise ValueError(f"{data.root}: labels {data.label_names} differ from the model's {label_names}")
    split_path = split_file or cfg.data.split_file
    subsets = read_split(split_path, data.ids)
    ds = subset_dataset(data, subsets, SUBSET_GROUPS[subset], cfg.data.img_size, cache=dataset_cache(data, cfg))
    if len(ds) == 0:
        raise ValueError(f"subset {subset!r} of {split_path} is empty")
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
    if tracking is not None and tracking.tracking.enabled:
        log_evaluation(tracking, model_path, subset, metrics, table, y, scores, label_names, out, data.root)
    print(f"evaluated {len(ds)} {subset} images in {took}: {named or out / 'metrics.json'}", file=sys.stderr)
    return metrics
