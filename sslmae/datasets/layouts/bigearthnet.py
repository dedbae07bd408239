"""`bigearthnet`: one folder per patch, one GeoTIFF per Sentinel-2 band (`<patch>_B02.tif`, ...).

Two forms of the labels, both BigEarthNet-S2's:
- v1: `<patch>/<patch>_labels_metadata.json` ({"labels": [names], ...}) beside the band files;
- v2 (reBEN): `metadata.parquet` at the top (columns `patch_id`, `labels` (a list of names) and
  `split` train/validation/test, kept as the predefined split), the patch folders anywhere below
  (BigEarthNet-S2's `<tile>/<patch>/`).

Each record lists the band files the patch has, in TorchGeo's order (BANDS: B01..B12 with B8A after
B08; BigEarthNet has no B10), and names them (Record.bands). A patch without B04, B03 and B02 is a bad
item. How they are read is the dataset's band setting (sslmae.datasets.band_plan): RGB composes
B04/B03/B02 mapped to 8 bits with one fixed scale for all patches (DN 0..3000 -> 0..255, clipped, so
radiometry stays comparable across images); with bands, each chosen band at 16 bits, the 20 m and 60 m
bands resampled bilinearly to the patch's 10 m grid (as TorchGeo's BigEarthNet datasets read them).

Label names are the sorted union of the labels found.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset, Record

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
RGB = ("B04", "B03", "B02")
BAND_MAX = 3000.0
SUFFIX = "_labels_metadata.json"
METADATA = "metadata.parquet"  # v2 (reBEN)
SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
EXTS = (".tif", ".tiff", ".TIF")


def _patches(root: Path) -> list[Path]:
    return sorted(root.glob(f"*/*{SUFFIX}"))


def detect(root: Path) -> bool:
    return bool(_patches(root)) or (root / METADATA).is_file()


def _band_files(folder: Path, patch: str) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """The patch's band files in BANDS order and their band names (the bands it has)."""
    found = []
    for band in BANDS:
        for ext in EXTS:
            p = folder / f"{patch}_{band}{ext}"
            if p.is_file():
                found.append((p, band))
                break
    return tuple(p for p, _ in found), tuple(b for _, b in found)


def _entries_v1(root: Path, problems: Problems) -> list[tuple[str, Path, list[str], str | None, str]]:
    """(patch, folder, labels, split, labels file) of every v1 patch."""
    entries = []
    for meta in _patches(root):
        patch = meta.name[: -len(SUFFIX)]
        try:
            labels = json.loads(meta.read_text(encoding="utf-8-sig"))["labels"]
            if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
                raise ValueError("'labels' must be a list of names")
        except (ValueError, KeyError, TypeError) as exc:
            problems.bad(str(meta), f"unreadable labels: {exc}", "bad_label")
            continue
        entries.append((patch, meta.parent, labels, None, str(meta)))
    return entries


def _entries_v2(root: Path, problems: Problems) -> list[tuple[str, Path, list[str], str | None, str]]:
    """(patch, folder, labels, split, metadata) of every row of v2's metadata.parquet."""
    import pyarrow.parquet as pq

    table_path = root / METADATA
    try:
        table = pq.read_table(table_path)
    except Exception as exc:
        raise DatasetError(f"{table_path}: cannot read: {' '.join(str(exc).split())[:160]}") from None
    missing = [c for c in ("patch_id", "labels") if c not in table.column_names]
    if missing:
        raise DatasetError(f"{table_path}: no column(s) {', '.join(missing)} (BigEarthNet v2's metadata has "
                           "patch_id, labels, split)")
    folders = {}
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            folders.setdefault(d, Path(dirpath) / d)
    splits = table["split"].to_pylist() if "split" in table.column_names else [None] * table.num_rows
    entries = []
    for row, (patch, labels, split) in enumerate(zip(table["patch_id"].to_pylist(), table["labels"].to_pylist(), splits)):
        where = f"{table_path} row {row + 2}"
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x for x in labels):
            problems.bad(where, f"labels of {patch}: must be a list of names, got {labels!r}", "bad_label")
            continue
        if split is not None and split not in SPLITS:
            problems.bad(where, f"split of {patch}: {split!r} is not one of {sorted(SPLITS)}", "bad_split")
            continue
        if patch not in folders:
            problems.bad(where, f"no folder {patch} under {root}", "missing_image")
            continue
        entries.append((patch, folders[patch], list(labels), SPLITS.get(split) if split else None, where))
    return entries


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    entries = _entries_v1(root, problems) if _patches(root) else _entries_v2(root, problems)
    if not entries and not problems.items:
        raise DatasetError(f"{root}: no */*{SUFFIX} files and no {METADATA}")
    kept = []
    for patch, folder, labels, split, where in entries:
        files, names = _band_files(folder, patch)
        missing = [b for b in RGB if b not in names]
        if missing:
            problems.bad(str(folder), f"missing band file(s) {', '.join(missing)}", "missing_image")
            continue
        kept.append((patch, files, names, sorted(set(labels)), split, folder))
    label_names = sorted({n for *_, labels, _, _ in kept for n in labels})
    col = {n: i for i, n in enumerate(label_names)}
    records = []
    for patch, files, names, labels, split, folder in kept:
        vec = np.zeros(len(label_names), dtype=np.uint8)
        vec[[col[n] for n in labels]] = 1
        records.append(Record(image=patch, files=files, labels=vec, split=split, source=str(folder.relative_to(root)),
                              bands=names))
    return RawDataset(layout="bigearthnet", task="mlc", label_names=label_names, records=records, band_max=BAND_MAX,
                      rgb_bands=RGB)
