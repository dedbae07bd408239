"""Strict reader of a `labels-csv` folder (images/ + labels.csv) for direct training:
the first problem is an error naming the file and row (the embedded synthetic dataset
and ../shared/datasets/ucm_mlc are in this layout). `sslmae ingest` is the lenient path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslmae.datasets.layouts import labels_csv as layout
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import LabeledImages

__all__ = ["DatasetError", "LabeledImages", "read_labels_csv"]


def read_labels_csv(root: str | Path) -> LabeledImages:
    root = Path(root)
    if not (root / "labels.csv").is_file():
        raise DatasetError(f"{root / 'labels.csv'}: not found (expected the labels-csv layout: images/ + labels.csv, "
                           f"or an ingested folder with manifest.parquet)")
    raw = layout.read(root, Problems("error"))
    y = np.stack([r.labels for r in raw.records]).astype(np.uint8)
    never = [n for n, c in zip(raw.label_names, y.sum(0)) if c == 0]
    if never:
        raise DatasetError(f"{root / 'labels.csv'}: label(s) never positive: {', '.join(never)}")
    return LabeledImages(root=root, ids=[r.image for r in raw.records], paths=[r.files[0] for r in raw.records],
                         label_names=raw.label_names, labels=y, task=raw.task)
