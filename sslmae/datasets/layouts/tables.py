"""Label tables (labels.csv, LandUse_Multilabeled.txt): parsed row by row with problems named.

Accepts a UTF-8 BOM and CRLF line endings. Each row: an image id and one 0/1 per label.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RecordTable


def read_label_table(path: Path, delimiter: str, id_header: str, problems: Problems):
    """-> (label names, rows): rows yields (line number, image id, labels as C bytes of 0/1), read
    from the file as they come (a table of millions of rows is never held whole). Header problems
    are fatal; so is a table with no rows, found once the rows are read."""
    if not path.is_file():
        raise DatasetError(f"{path}: not found")
    fh = open(path, encoding="utf-8-sig", newline="")
    reader = csv.reader(_decoded_lines(fh, path), delimiter=delimiter)
    first = next(reader, None)
    if first is None:
        fh.close()
        raise DatasetError(f"{path}: empty file")
    header = [h.strip() for h in first]
    if len(header) < 2 or header[0] != id_header:
        fh.close()
        raise DatasetError(f"{path}: header must be '{id_header}{delimiter}<label names>', got {delimiter.join(header)!r}")
    names = header[1:]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or any(not n for n in names):
        fh.close()
        raise DatasetError(f"{path}: label names must be unique and non-empty (duplicates: {dup})")
    return names, _rows(fh, reader, path, header, names, problems, delimiter)


def _decoded_lines(fh, path: Path):
    try:
        yield from fh
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _first_line(path: Path, delimiter: str, image: str) -> int:
    """The line of the first well-formed row naming `image` (read again only when a duplicate is
    found, so the rows seen are kept as a set: no line number per image in memory)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh, delimiter=delimiter)
        width = len(next(rows))
        for lineno, row in enumerate(rows, start=2):
            if len(row) == width and row[0].strip() == image:
                return lineno
    raise AssertionError(image)  # it was seen in this file


def _rows(fh, reader, path: Path, header: list[str], names: list[str], problems: Problems, delimiter: str):
    seen: set[str] = set()
    any_row = False
    with fh:
        for lineno, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            any_row = True
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                problems.bad(where, f"expected {len(header)} columns, got {len(row)}", "bad_row")
                continue
            image = row[0].strip()
            if not image:
                problems.bad(where, "empty image name", "bad_row")
                continue
            if image in seen:
                problems.bad(where, f"image {image!r} listed twice (first at line "
                                    f"{_first_line(path, delimiter, image)})", "duplicate_row")
                continue
            seen.add(image)
            cells = [cell.strip() for cell in row[1:]]
            bad = next((i for i, cell in enumerate(cells) if cell not in ("0", "1")), None)
            if bad is not None:
                what = "missing value" if cells[bad] == "" else f"got {cells[bad]!r}"
                problems.bad(where, f"label {names[bad]!r} of {image!r} must be 0 or 1, {what}", "bad_label")
                continue
            yield lineno, image, bytes(cell == "1" for cell in cells)
    if not any_row:
        raise DatasetError(f"{path}: header only, no label rows")


def join_images(path: Path, rows, index: dict[str, str], problems: Problems, source_root: Path) -> RecordTable:
    """Label rows + image index (id -> file) -> records; rows without an image and images without a
    row are problems. `index` is consumed: a file taken by a row is marked used in it (its path
    freed), so memory does not hold the index and the records of a large dataset side by side."""
    records = RecordTable(str(source_root), 0)
    root = os.path.abspath(source_root)
    for lineno, image, labels in rows:
        records.n_labels = len(labels)
        stem, suffix = os.path.splitext(image)
        key = image if not suffix else stem
        file = index.get(key)
        if suffix and file and os.path.basename(file) != image:
            file = None  # the row names a file name: only that file will do
        if file is None and suffix and image in index:  # an id that contains a dot, e.g. a.b
            key, stem = image, image
            file = index[key]
        if file is None:
            problems.bad(f"{path}:{lineno}", f"no image file for {image!r}", "missing_image")
            continue
        if file == USED:
            problems.bad(f"{path}:{lineno}", f"the image file of {image!r} is already an earlier row's",
                         "duplicate_row")
            continue
        index[key] = USED
        records.append(stem if suffix else image, file if not os.path.isabs(file) else os.path.relpath(file, root),
                       labels)
    for file in sorted(f for f in index.values() if f != USED):
        problems.bad(os.path.join(root, file), f"image has no label row in {path.name}", "unlabeled_image")
    return records


USED = ""  # join_images: an index entry a row has taken
