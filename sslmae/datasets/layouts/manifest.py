"""`manifest`: a CSV or Parquet table (`manifest.csv` / `manifest.parquet` at the root) with
an `image` column (a path relative to the table, an absolute path, or an s3:// URI) and
either a `labels` column (a list of label names; in CSV separated by '|' or ';') or one 0/1
column per label (multi-hot). An optional `split` column (train/val/test) is kept as the
predefined split. Other columns are not allowed, so a typo never silently becomes a label.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import SOURCE, RawDataset, Record

NAMES = ("manifest.parquet", "manifest.csv")
SPLITS = ("train", "val", "test")


def _table(root: Path) -> Path | None:
    if root.is_file():
        return root
    for name in NAMES:
        if (root / name).is_file():
            return root / name
    return None


def detect(root: Path) -> bool:
    return _table(root) is not None


def _load(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read table: {exc}") from None


def _split_names(value) -> list[str] | None:
    """A labels cell -> names; None when missing (null, or an empty CSV cell: CSV has no other way to
    say so; an image with no positive label has 0/1 columns all 0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, str):
        sep = "|" if "|" in value else ";"
        return [v.strip() for v in value.split(sep) if v.strip()]
    return [str(v) for v in value]


def _text(value) -> str | None:
    """A cell as stripped text; None for missing (None, NaN, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _resolve(cell: str, base: Path, fetch) -> Path:
    if cell.startswith("s3://"):
        return fetch(cell)
    p = Path(cell)
    return p if p.is_absolute() else base / p


def _read_canonical(path: Path, meta: dict) -> RawDataset:
    """An sslmae-ingested folder: its manifest already holds vectors, names and splits."""
    pooled = "labeled" in pq.read_schema(path).names  # a dataset with an unlabeled pool keeps it
    rows = pq.read_table(path, columns=["image", "path", "labels", "split", "source"]
                         + (["labeled", "origin"] if pooled else [])).to_pylist()
    records = [Record(image=r["image"], files=(path.parent / r["path"],), labels=np.asarray(r["labels"], np.uint8),
                      split=r["split"], source=r["source"], known=r.get("labeled", True),
                      origin=r.get("origin", SOURCE)) for r in rows]
    return RawDataset(layout="manifest", task=meta.get(b"sslmae.task", b"mlc").decode(),
                      label_names=json.loads(meta[b"sslmae.label_names"]), records=records)


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    """`fetch(uri) -> Path` downloads s3:// images (given by the ingest)."""
    path = _table(root)
    if path is None:
        raise DatasetError(f"{root}: no {' or '.join(NAMES)}")
    if path.suffix == ".parquet":
        meta = pq.read_schema(path).metadata or {}
        if b"sslmae.label_names" in meta:  # re-ingesting an ingested folder is an identity
            return _read_canonical(path, meta)
    df = _load(path)
    if "image" not in df.columns:
        raise DatasetError(f"{path}: needs an 'image' column, has {list(df.columns)}")
    if len(df) == 0:
        raise DatasetError(f"{path}: header only, no rows")
    has_split = "split" in df.columns
    label_cols = [c for c in df.columns if c not in ("image", "split")]
    list_form = label_cols == ["labels"]
    if not label_cols:
        raise DatasetError(f"{path}: no label columns (a 'labels' list or one 0/1 column per label)")
    rows = []
    for i, row in enumerate(df.itertuples(index=False), start=2 if path.suffix == ".csv" else 0):
        rec = row._asdict()
        where = f"{path}:{i}" if path.suffix == ".csv" else f"{path}[row {i}]"
        image = str(rec["image"]).strip()
        if not image:
            problems.bad(where, "empty image path", "bad_row")
            continue
        split = _text(rec["split"]) if has_split else None
        if has_split:
            if split is not None and split not in SPLITS:
                problems.bad(where, f"split of {image!r} must be one of {list(SPLITS)}, got {split!r}", "bad_row")
                continue
        if list_form:
            names = _split_names(rec["labels"])
            if names is None:
                if problems.label_less(where, image):
                    rows.append((where, image, None, split))
                continue
            rows.append((where, image, names, split))
        elif all(str(rec[c]).strip() in ("", "nan", "None") for c in label_cols) and problems.unlabeled_rows == "pool":
            problems.label_less(where, image)
            rows.append((where, image, None, split))
        else:
            vec, ok = [], True
            for c in label_cols:
                cell = str(rec[c]).strip()
                if cell in ("1", "1.0", "True", "true"):
                    vec.append(1)
                elif cell in ("0", "0.0", "False", "false"):
                    vec.append(0)
                else:
                    what = "missing value" if cell in ("", "nan", "None") else f"got {cell!r}"
                    problems.bad(where, f"label {c!r} of {image!r} must be 0 or 1, {what}", "bad_label")
                    ok = False
                    break
            if ok:
                rows.append((where, image, np.asarray(vec, dtype=np.uint8), split))
    label_names = sorted({n for *_, names, _ in rows for n in names or ()}) if list_form else label_cols
    col = {n: j for j, n in enumerate(label_names)}
    base = path.parent
    records, seen = [], {}
    for where, image, lab, split in rows:
        try:
            file = _resolve(image, base, fetch or _no_fetch)
        except ValueError as exc:  # SourceError: a missing or refused S3 object
            problems.bad(where, str(exc), "missing_image")
            continue
        stem = Path(image.rsplit("/", 1)[-1]).stem
        if stem in seen:
            problems.bad(where, f"duplicate image name {stem!r} (also {seen[stem]})", "duplicate_name")
            continue
        if not file.is_file():
            problems.bad(where, f"image file not found: {file}", "missing_image")
            continue
        seen[stem] = image
        if lab is None:  # an image of the pool (data.unlabeled_rows: pool)
            vec = np.zeros(len(label_names), dtype=np.uint8)
        elif list_form:
            vec = np.zeros(len(label_names), dtype=np.uint8)
            vec[[col[n] for n in lab]] = 1
        else:
            vec = lab
        records.append(Record(image=stem, files=(file,), labels=vec, split=split if lab is not None else None,
                              source=image, known=lab is not None, origin=SOURCE))
    return RawDataset(layout="manifest", task="mlc", label_names=label_names, records=records)


def _no_fetch(uri: str) -> Path:
    raise DatasetError(f"{uri}: s3:// images need the ingest's S3 access")
