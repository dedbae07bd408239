"""Open a dataset for training: an ingested one (manifest.parquet; its images in files or in shards,
in a folder or under an s3:// prefix) or a raw labels-csv folder (as the synthetic default), as one
`LabeledImages` table."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sslmae.bands import Bands
from sslmae.datasets.labels_csv import LabeledImages, read_labels_csv
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.records import ShardIndex
from sslmae.datasets.store import Store

MANIFEST = "manifest.parquet"
REQUIRED = ("image", "path", "labels", "content_sha256", "split")


def is_remote(root: str | Path) -> bool:
    return str(root).startswith("s3://")


def read_manifest(root: Path | str, table_path: Path | None = None) -> LabeledImages:
    """The manifest of the dataset at `root` (read from `table_path` when it was fetched). Only the
    columns training needs are read, and each goes from Arrow to a NumPy array without a Python
    object per image (ids aside): a pool of millions of images costs tens of bytes per image."""
    path = table_path or Path(root) / MANIFEST
    named = f"{root}/{MANIFEST}" if is_remote(root) else str(path)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise DatasetError(f"{named}: cannot read manifest: {exc}") from None
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    shards = meta.get("sslmae.format") == "shards"
    needed = REQUIRED + (("offset", "size") if shards else ()) + (("labeled",) if "labeled" in schema.names else ())
    missing = [c for c in needed if c not in schema.names]
    if missing or "sslmae.label_names" not in meta:
        raise DatasetError(f"{named}: not an sslmae manifest (missing {missing or ['label names metadata']})")
    try:
        table = pq.read_table(path, columns=list(needed))
    except Exception as exc:
        raise DatasetError(f"{named}: cannot read manifest: {exc}") from None
    names = json.loads(meta["sslmae.label_names"])
    n = table.num_rows
    labels = table["labels"].combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.uint8)
    if labels.size != n * len(names):
        raise DatasetError(f"{named}: label vectors are not all {len(names)} long")
    _, groups = np.unique(_fixed_strings(table["content_sha256"]), return_inverse=True)
    split = table["split"]
    predefined = split.to_numpy(zero_copy_only=False) if split.null_count < n else None
    common = dict(ids=table["image"].to_pylist(), label_names=names, labels=labels.reshape(n, len(names)),
                  task=meta.get("sslmae.task", "mlc"), groups=groups, predefined=predefined,
                  bands=Bands.from_json(meta["sslmae.bands"]) if "sslmae.bands" in meta else None,
                  known=table["labeled"].to_numpy(zero_copy_only=False).astype(bool) if "labeled" in needed else None)
    if shards:
        index = _shard_index(str(root), table)
        if not is_remote(root):
            absent = [n for n in index.names if not (Path(root) / n).is_file()]
            if absent:
                raise DatasetError(f"{named}: {len(absent)} shard file(s) missing, e.g. {Path(root) / absent[0]}")
        return LabeledImages(root=root if is_remote(root) else Path(root), paths=[], shards=index, **common)
    if is_remote(root):
        raise DatasetError(f"{named}: a dataset on S3 must be in the shard format (ingest --format shards)")
    paths = [Path(root) / p for p in table["path"].to_pylist()]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise DatasetError(f"{named}: {len(absent)} image file(s) missing, e.g. {absent[0]}")
    return LabeledImages(root=Path(root), paths=paths, **common)


def _fixed_strings(column: pa.ChunkedArray) -> np.ndarray:
    """(N,) bytes ('S' dtype, one buffer) of a string column such as the hex digests: sorted and
    compared as the strings are, without a Python str per row."""
    return np.concatenate([c.cast(pa.binary()).to_numpy(zero_copy_only=False).astype(bytes)
                           for c in column.chunks]) if column.num_chunks else np.array([], dtype="S1")


def _shard_index(root: str, table: pa.Table) -> ShardIndex:
    encoded = table["path"].combine_chunks().dictionary_encode()
    return ShardIndex(root=root, names=encoded.dictionary.to_pylist(), shard=encoded.indices.to_numpy().astype(np.int32),
                      offset=table["offset"].to_numpy().astype(np.int64), size=table["size"].to_numpy().astype(np.int64))


def load_dataset(root: str | Path) -> LabeledImages:
    """manifest.parquet when present (an s3:// dataset: fetched to a temporary file), else the
    labels-csv layout."""
    if is_remote(root):
        with tempfile.TemporaryDirectory(prefix="sslmae-manifest-") as tmp:
            local = Path(tmp) / MANIFEST
            if not Store(str(root)).get(MANIFEST, local):
                raise DatasetError(f"{str(root).rstrip('/')}/{MANIFEST}: not found (not an ingested dataset, "
                                   "or its ingest has not finished)")
            return read_manifest(str(root).rstrip("/"), local)
    root = Path(root)
    if (root / MANIFEST).is_file():
        return read_manifest(root)
    return read_labels_csv(root)
