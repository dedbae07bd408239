"""Open a dataset folder for training: an ingested one (manifest.parquet) or a raw
labels-csv folder (as the synthetic default), as one `LabeledImages` table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sslmae.datasets.labels_csv import LabeledImages, read_labels_csv
from sslmae.datasets.problems import DatasetError

MANIFEST = "manifest.parquet"
REQUIRED = ("image", "path", "labels", "content_sha256", "split")


def read_manifest(root: Path) -> LabeledImages:
    path = root / MANIFEST
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read manifest: {exc}") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing or "sslmae.label_names" not in meta:
        raise DatasetError(f"{path}: not an sslmae manifest (missing {missing or ['label names metadata']})")
    names = json.loads(meta["sslmae.label_names"])
    cols = table.select(list(REQUIRED)).to_pydict()
    labels = np.asarray(cols["labels"], dtype=np.uint8).reshape(len(cols["image"]), len(names))
    paths = [root / p for p in cols["path"]]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise DatasetError(f"{path}: {len(absent)} image file(s) missing, e.g. {absent[0]}")
    _, groups = np.unique(np.asarray(cols["content_sha256"]), return_inverse=True)
    split = cols["split"]
    predefined = np.asarray(split, dtype=object) if any(s is not None for s in split) else None
    return LabeledImages(root=root, ids=list(cols["image"]), paths=paths, label_names=names, labels=labels,
                         task=meta.get("sslmae.task", "mlc"), groups=groups, predefined=predefined)


def load_dataset(root: str | Path) -> LabeledImages:
    """manifest.parquet when present, else the labels-csv layout."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return read_manifest(root)
    return read_labels_csv(root)
