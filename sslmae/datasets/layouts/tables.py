"""Label tables (labels.csv, LandUse_Multilabeled.txt): parsed row by row with problems named.

Accepts a UTF-8 BOM and CRLF line endings. Each row: an image id and one 0/1 per label.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import Record


def read_label_table(path: Path, delimiter: str, id_header: str, problems: Problems):
    """-> (label names, [(line number, image id, labels (C,) uint8)]). Header problems are fatal."""
    if not path.is_file():
        raise DatasetError(f"{path}: not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not rows:
        raise DatasetError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0] != id_header:
        raise DatasetError(f"{path}: header must be '{id_header}{delimiter}<label names>', got {delimiter.join(header)!r}")
    names = header[1:]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or any(not n for n in names):
        raise DatasetError(f"{path}: label names must be unique and non-empty (duplicates: {dup})")
    if not any(r and any(c.strip() for c in r) for r in rows[1:]):
        raise DatasetError(f"{path}: header only, no label rows")
    out, seen = [], {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{path}:{lineno}"
        if len(row) != len(header):
            problems.bad(where, f"expected {len(header)} columns, got {len(row)}", "bad_row")
            continue
        image = row[0].strip()
        if not image:
            problems.bad(where, "empty image name", "bad_row")
            continue
        if image in seen:
            problems.bad(where, f"image {image!r} listed twice (first at line {seen[image]})", "duplicate_row")
            continue
        seen[image] = lineno
        vec, ok = [], True
        for name, cell in zip(names, row[1:]):
            cell = cell.strip()
            if cell not in ("0", "1"):
                what = "missing value" if cell == "" else f"got {cell!r}"
                problems.bad(where, f"label {name!r} of {image!r} must be 0 or 1, {what}", "bad_label")
                ok = False
                break
            vec.append(int(cell))
        if ok:
            out.append((lineno, image, np.asarray(vec, dtype=np.uint8)))
    return names, out


def join_images(path: Path, rows, index: dict[str, Path], problems: Problems, source_root: Path) -> list[Record]:
    """Label rows + image index -> records; rows without an image and images without a row are problems."""
    records, used = [], set()
    for lineno, image, vec in rows:
        file = index.get(image)
        if file is None:
            problems.bad(f"{path}:{lineno}", f"no image file for {image!r}", "missing_image")
            continue
        used.add(file)
        stem = Path(image).stem if Path(image).suffix else image
        records.append(Record(image=stem, files=(file,), labels=vec, source=str(file.relative_to(source_root))))
    for file in sorted(set(index.values()) - used):
        problems.bad(str(file), f"image has no label row in {path.name}", "unlabeled_image")
    return records
