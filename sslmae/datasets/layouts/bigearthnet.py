"""`bigearthnet`: one folder per patch (BigEarthNet-S2 style) holding
`<patch>_labels_metadata.json` ({"labels": [names], ...}) and one GeoTIFF per band;
RGB is composed from B04 (red), B03 (green), B02 (blue).

Label names are the sorted union of the labels found. Bands are 16-bit reflectance
(DN = 10000 x reflectance); they are mapped to 8 bits with one fixed scale for all patches
(DN 0..3000 -> 0..255, clipped), so radiometry stays comparable across images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset, Record

BANDS = ("B04", "B03", "B02")
BAND_MAX = 3000.0
SUFFIX = "_labels_metadata.json"


def _patches(root: Path) -> list[Path]:
    return sorted(root.glob(f"*/*{SUFFIX}"))


def detect(root: Path) -> bool:
    return bool(_patches(root))


def _band_file(folder: Path, patch: str, band: str) -> Path | None:
    for ext in (".tif", ".tiff", ".TIF"):
        p = folder / f"{patch}_{band}{ext}"
        if p.is_file():
            return p
    return None


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    metas = _patches(root)
    if not metas:
        raise DatasetError(f"{root}: no */*{SUFFIX} files")
    entries = []
    for meta in metas:
        patch = meta.name[: -len(SUFFIX)]
        try:
            labels = json.loads(meta.read_text(encoding="utf-8-sig"))["labels"]
            if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
                raise ValueError("'labels' must be a list of names")
        except (ValueError, KeyError, TypeError) as exc:
            problems.bad(str(meta), f"unreadable labels: {exc}", "bad_label")
            continue
        bands = [_band_file(meta.parent, patch, b) for b in BANDS]
        missing = [b for b, f in zip(BANDS, bands) if f is None]
        if missing:
            problems.bad(str(meta.parent), f"missing band file(s) {', '.join(missing)}", "missing_image")
            continue
        entries.append((patch, tuple(bands), sorted(set(labels)), meta))
    names = sorted({n for _, _, labels, _ in entries for n in labels})
    col = {n: i for i, n in enumerate(names)}
    records = []
    for patch, bands, labels, meta in entries:
        vec = np.zeros(len(names), dtype=np.uint8)
        vec[[col[n] for n in labels]] = 1
        records.append(Record(image=patch, files=bands, labels=vec, source=str(meta.parent.relative_to(root))))
    return RawDataset(layout="bigearthnet", task="mlc", label_names=names, records=records, band_max=BAND_MAX)
