"""The writers of an ingested dataset: images as files plus one manifest table, or tar shards plus a
manifest written row group by row group (sslmae.datasets.ingest says when each is used)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sslmae.datasets.shards import ShardSink
from sslmae.datasets.store import Store

MANIFEST = "manifest.parquet"
MANIFEST_COLUMNS = {
    "image": pa.string(),  # id, unique; file stem
    "path": pa.string(),  # relative to the dataset folder: the image file, or the shard holding it
    "sha256": pa.string(),  # of the stored bytes
    "content_sha256": pa.string(),  # of the decoded pixels: equal for identical images
    "width": pa.int32(),  # of the source image
    "height": pa.int32(),
    "bands": pa.int32(),  # of the source (e.g. 1 grayscale, 4 RGBA, 3 band files)
    "labels": pa.list_(pa.uint8()),  # (C,) 0/1 in label_names order
    "label_names": pa.list_(pa.string()),  # names of the positive labels
    "split": pa.string(),  # predefined train/val/test, or null
    "source": pa.string(),  # where the pixels came from, relative to the source root
}
# a dataset with an unlabeled pool (sslmae.datasets.pool) adds these; without one, the manifest is as before
POOL_COLUMNS = {
    "labeled": pa.bool_(),  # whether the image's labels are known (false: the pool; its labels all 0)
    "origin": pa.string(),  # which source: "source" (data.source) or "unlabeled/<i>" (data.unlabeled[i])
}
SHARD_EXTRA = {"offset": pa.int64(), "size": pa.int64()}  # of the bytes in the shard
SHARD_COLUMNS = {**MANIFEST_COLUMNS, **SHARD_EXTRA}


class FolderWriter:
    """images/<id>.<ext>, and the manifest in one table at the end (small data)."""

    def __init__(self, tmp: Path, columns: dict = MANIFEST_COLUMNS):
        self.tmp, self.rows, self.columns = tmp, [], columns
        (tmp / "images").mkdir()

    def add(self, row: dict, ext: str, data: bytes, meta: bytes) -> None:
        rel = f"images/{row['image']}.{ext}"
        (self.tmp / rel).write_bytes(data)
        self.rows.append({**row, "path": rel})

    def finish(self, metadata: dict) -> None:
        table = pa.Table.from_pylist(self.rows, schema=pa.schema(self.columns))
        pq.write_table(table.replace_schema_metadata(metadata), self.tmp / MANIFEST, compression="zstd")

    def abort(self) -> None:
        pass


class ShardWriter:
    """Shards under `tmp`, the manifest row group by row group; with `remote`, each closed shard is
    uploaded there and removed here (local disk: one shard), the manifest last."""

    def __init__(self, tmp: Path, shard_bytes: int, remote: Store | None, metadata: dict,
                 columns: dict = MANIFEST_COLUMNS):
        self.tmp, self.remote, self.key = tmp, remote, 0
        self.table = pq.ParquetWriter(tmp / f".{MANIFEST}.partial", pa.schema({**columns, **SHARD_EXTRA}, metadata=metadata),
                                      compression="zstd")
        self.sink = ShardSink(tmp, shard_bytes, self._closed)

    def _closed(self, shard: Path, rows: list[dict]) -> None:
        self.table.write_table(pa.Table.from_pylist(rows, schema=self.table.schema))
        if self.remote is not None:
            self.remote.put(shard, rows[0]["path"])
            shard.unlink()

    def add(self, row: dict, ext: str, data: bytes, meta: bytes) -> None:
        self.sink.add(row, self.key, ext, data, meta)
        self.key += 1

    def finish(self, metadata: dict) -> None:
        self.sink.close_shard()
        self.table.close()
        (self.tmp / f".{MANIFEST}.partial").rename(self.tmp / MANIFEST)

    def abort(self) -> None:
        self.sink.abort()
        self.table.close()
