"""`ucm-txt`: UC Merced's LandUse_Multilabeled.txt (tab-separated, header `IMAGE\\LABEL` +
label names) with the images anywhere below the root (originally Images/<class>/<id>.tif)."""

from __future__ import annotations

from pathlib import Path

from sslmae.datasets.layouts.files import index_images
from sslmae.datasets.layouts.tables import join_images, read_label_table
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset

TABLE = "LandUse_Multilabeled.txt"


def _table(root: Path) -> Path | None:
    hits = sorted(root.glob(TABLE)) + sorted(root.glob(f"*/{TABLE}"))
    return hits[0] if hits else None


def detect(root: Path) -> bool:
    return _table(root) is not None


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    table = _table(root)
    if table is None:
        raise DatasetError(f"{root}: no {TABLE} at the root or one folder down")
    names, rows = read_label_table(table, "\t", "IMAGE\\LABEL", problems)
    index = index_images(root, problems, recursive=True, root=root)
    records = join_images(table, rows, index, problems, root)
    return RawDataset(layout="ucm-txt", task="mlc", label_names=names, records=records)
