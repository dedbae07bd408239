"""The shard format of an ingested dataset (`sslmae ingest --format shards`): the images in tar files
of about `data.shard_bytes` each, in WebDataset's layout, so any tar tool or `webdataset.WebDataset`
reads them as they are.

    DIR/shards/shard-000000.tar    per image two members, keyed by its manifest row (9 digits: no
                                   dots, as WebDataset keys must be): <row>.png|jpg, the stored bytes,
                                   and <row>.json, {"image": id, "labels": [names]}
    DIR/manifest.parquet           the folder format's manifest, with `path` naming the shard and
                                   `offset` / `size` saying where the image's bytes lie in it: a
                                   reader needs no tar parsing (one pread, or one S3 range request)

`ShardSink` writes them: a shard is filled under a temporary name and renamed when closed, so a
name always holds a whole shard, and rows reach the manifest only once their shard is closed.
Tar members here are plain USTAR (short ASCII names, integer mtime 0: reproducible bytes), so each
member is one 512-byte header and its data padded to 512 bytes; `add` checks that after every
sample.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

SHARD_DIR = "shards"
NAME = "shard-{:06d}.tar"
BLOCK = 512
DEFAULT_SHARD_BYTES = 64 * 2**20


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def member_json(image: str, labels: list[str] | None) -> bytes:
    """The JSON member of an image: its id and label names (for readers other than sslmae); labels
    null for an image of the unlabeled pool (unknown, not none)."""
    return json.dumps({"image": image, "labels": labels}, separators=(",", ":")).encode()


class ShardSink:
    """Writes samples into consecutive shards of about `max_bytes` under `folder`/shards.

    on_closed(path, rows): called for every finished shard, after its rename, with its manifest rows
    completed by `path` (relative to `folder`), `offset` and `size`. The caller writes the rows to
    the manifest, and may move the file elsewhere (an upload)."""

    def __init__(self, folder: Path, max_bytes: int, on_closed: Callable[[Path, list[dict]], None]):
        self.root = Path(folder)
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.on_closed = max_bytes, on_closed
        self.index, self._writer, self._fh, self._tmp, self._rows = 0, None, None, None, []

    def _open(self) -> None:
        import webdataset as wds  # WebDataset's own tar writer: its layout, read by any tar tool

        self._tmp = self.root / SHARD_DIR / f".{NAME.format(self.index)}.tmp-{os.getpid()}"
        self._fh = open(self._tmp, "wb")
        self._writer = wds.TarWriter(self._fh, encoder=False, mtime=0)

    def add(self, row: dict, key: int, ext: str, data: bytes, meta: bytes) -> None:
        """One image: `data` its stored bytes (`ext`: png or jpg), `meta` its JSON member, `row` its
        manifest row, `key` its row number."""
        if self._writer is None:
            self._open()
        stream = self._writer.tarstream
        start = stream.offset
        self._writer.write({"__key__": f"{key:09d}", ext: data, "json": meta})
        members = sorted([(ext, len(data)), ("json", len(meta))])  # TarWriter writes them in key order
        before = sum(BLOCK + _padded(n) for name, n in members[:[m[0] for m in members].index(ext)])
        if stream.offset != start + sum(BLOCK + _padded(n) for _, n in members):
            raise RuntimeError(f"{self._tmp}: a tar member was not one header and its padded data")
        self._rows.append({**row, "offset": start + before + BLOCK, "size": len(data)})
        if stream.offset >= self.max_bytes:
            self.close_shard()

    def close_shard(self) -> None:
        """Finish the shard being written (if any) and hand its rows over."""
        if self._writer is None:
            return
        self._writer.close()
        self._fh.close()
        final = self.root / SHARD_DIR / NAME.format(self.index)
        os.replace(self._tmp, final)
        rows = [{**r, "path": f"{SHARD_DIR}/{final.name}"} for r in self._rows]
        self._writer = self._fh = self._tmp = None
        self._rows = []
        self.index += 1
        self.on_closed(final, rows)

    def abort(self) -> None:
        """Drop the shard being written: an interrupted ingest leaves no partial shard."""
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            self._fh.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._writer = self._fh = self._tmp = None
        self._rows = []


def read_member(path: str | Path, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of a local shard (one pread)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset)
    finally:
        os.close(fd)
    if len(data) != size:
        raise OSError(f"{path}: {size} bytes expected at offset {offset}, found {len(data)} (truncated shard?)")
    return data
