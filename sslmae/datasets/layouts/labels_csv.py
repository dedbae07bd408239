"""`labels-csv`: DIR/images/<id>.<ext> + DIR/labels.csv (header `image,<label names>`, 0/1)."""

from __future__ import annotations

from pathlib import Path

from sslmae.datasets.layouts.files import index_images
from sslmae.datasets.layouts.tables import join_images, read_label_table
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset


def detect(root: Path) -> bool:
    return (root / "labels.csv").is_file() and (root / "images").is_dir()


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    csv_path = root / "labels.csv"
    if not (root / "images").is_dir():
        raise DatasetError(f"{root / 'images'}: image folder not found")
    names, rows = read_label_table(csv_path, ",", "image", problems)
    index = index_images(root / "images", problems, root=root)
    records = join_images(csv_path, rows, index, problems, root)
    return RawDataset(layout="labels-csv", task="mlc", label_names=names, records=records)
