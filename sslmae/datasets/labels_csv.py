"""Reader for the `labels-csv` layout: `DIR/images/<stem>.<ext>` + `DIR/labels.csv`.

`labels.csv` has header `image,<label names>` and one 0/1 row per image; `image` is the
file stem (`agricultural00`) or a file name (`agricultural00.jpg`). This is the layout of
the embedded synthetic dataset and of ../shared/datasets/ucm_mlc.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class DatasetError(ValueError):
    """The dataset on disk is malformed; the message names the file and row."""


@dataclass(frozen=True)
class LabeledImages:
    """A multi-label image table.

    paths: (N,) image files;  ids: (N,) image ids (file stems);  labels: (N, C) uint8 0/1.
    """

    root: Path
    ids: list[str]
    paths: list[Path]
    label_names: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _index_images(folder: Path) -> dict[str, Path]:
    """Map both file name and stem to path; a stem shared by two files is ambiguous."""
    index: dict[str, Path] = {}
    ambiguous: set[str] = set()
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        index[p.name] = p
        if p.stem in index and index[p.stem] != p:
            ambiguous.add(p.stem)
        index.setdefault(p.stem, p)
    for stem in ambiguous:
        index.pop(stem)
    return index


def read_labels_csv(root: str | Path) -> LabeledImages:
    """Read and validate a labels-csv dataset folder. Raises DatasetError naming file/row."""
    root = Path(root)
    csv_path, img_dir = root / "labels.csv", root / "images"
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: not found (expected the labels-csv layout: images/ + labels.csv)")
    if not img_dir.is_dir():
        raise DatasetError(f"{img_dir}: image folder not found")
    text = csv_path.read_text(encoding="utf-8-sig")  # tolerate a UTF-8 BOM
    rows = list(csv.reader(io.StringIO(text)))  # csv handles CRLF
    if not rows:
        raise DatasetError(f"{csv_path}: empty file")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0] != "image":
        raise DatasetError(f"{csv_path}: header must be 'image,<label names>', got {','.join(header)!r}")
    label_names = header[1:]
    dup = sorted({n for n in label_names if label_names.count(n) > 1})
    if dup or any(not n for n in label_names):
        raise DatasetError(f"{csv_path}: label names must be unique and non-empty (duplicates: {dup})")
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if not body:
        raise DatasetError(f"{csv_path}: header only, no label rows")
    images = _index_images(img_dir)
    ids, paths, labels, seen = [], [], [], {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{csv_path}:{lineno}: expected {len(header)} columns, got {len(row)}")
        name = row[0].strip()
        if name in seen:
            raise DatasetError(f"{csv_path}:{lineno}: image {name!r} listed twice (first at line {seen[name]})")
        seen[name] = lineno
        vec = []
        for label, cell in zip(label_names, row[1:]):
            cell = cell.strip()
            if cell not in ("0", "1"):
                raise DatasetError(f"{csv_path}:{lineno}: label {label!r} of {name!r} must be 0 or 1, got {cell!r}")
            vec.append(int(cell))
        path = images.get(name)
        if path is None:
            raise DatasetError(f"{csv_path}:{lineno}: no image file for {name!r} in {img_dir}")
        ids.append(Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTS else name)
        paths.append(path)
        labels.append(vec)
    y = np.asarray(labels, dtype=np.uint8)
    never = [n for n, c in zip(label_names, y.sum(0)) if c == 0]
    if never:
        raise DatasetError(f"{csv_path}: label(s) never positive: {', '.join(never)}")
    return LabeledImages(root=root, ids=ids, paths=paths, label_names=label_names, labels=y)
