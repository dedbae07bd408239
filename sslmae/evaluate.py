"""`evaluate(...)`: score a saved model on one subset of a split; write the metric suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sslmae.atomic import atomic_file, write_json
from sslmae.data.augment import normalize
from sslmae.datasets.load import load_dataset
from sslmae.metrics import DECISIONS, SUITES, per_class_table
from sslmae.model.losses import probabilities
from sslmae.model.network import SSLMAE
from sslmae.split import read_split
from sslmae.train.checkpoint import load_model
from sslmae.train.datamodule import eval_loader, subset_dataset

SUBSET_GROUPS = {"labeled": ("labeled",), "unlabeled": ("unlabeled",), "val": ("val",), "test": ("test",),
                 "train": ("labeled", "unlabeled"), "all": ("labeled", "unlabeled", "val", "test")}


@torch.no_grad()
def predict_scores(model: SSLMAE, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """-> scores (N, C) probabilities, targets (N, C), in loader order."""
    model.to(device).eval()
    scores, targets = [], []
    for imgs, y, _ in loader:
        logits = model(normalize(imgs.to(device)))
        scores.append(probabilities(logits.float(), model.task).cpu())
        targets.append(y)
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()


def evaluate(
    model_path: str | Path,
    out_dir: str | Path,
    subset: str = "test",
    dataset_dir: str | Path | None = None,
    split_file: str | Path | None = None,
    threshold: float = 0.5,
    batch_size: int = 128,
    num_workers: int = 0,
) -> dict:
    """Metrics of `model_path` on `subset`; writes metrics.json and per_class.csv to out_dir.

    dataset_dir / split_file default to those the model was trained with.
    """
    if subset not in SUBSET_GROUPS:
        raise ValueError(f"subset: must be one of {sorted(SUBSET_GROUPS)}, got {subset!r}")
    model, cfg, label_names, meta = load_model(model_path)
    data = load_dataset(dataset_dir or cfg.data.dir)
    if data.label_names != label_names:
        raise ValueError(
            f"{data.root}: labels {data.label_names} differ from the model's {label_names}"
        )
    subsets = read_split(split_file or cfg.data.split_file, data.ids)
    ds = subset_dataset(data, subsets, SUBSET_GROUPS[subset], cfg.data.img_size)
    if len(ds) == 0:
        raise ValueError(f"subset {subset!r} of {split_file or cfg.data.split_file} is empty")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scores, y = predict_scores(model, eval_loader(ds, batch_size, num_workers), device)
    metrics = SUITES[cfg.data.task](y, scores, threshold)
    pred = DECISIONS[cfg.data.task](scores, threshold)
    table = per_class_table(y, scores, pred, label_names)
    out = Path(out_dir)
    with atomic_file(out / "per_class.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    write_json(out / "metrics.json", {**metrics, "subset": subset, "threshold": threshold, "task": cfg.data.task})
    return metrics
