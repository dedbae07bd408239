"""The bytes of images in a shard dataset (sslmae.datasets.shards), from wherever it lies.

A local dataset is read in place, one pread per image. A remote one (s3://) is read two ways:
`image` fetches whole shards into a local cache (`ShardCache`), for the shard-ordered streams of
training and evaluation, where every image of a shard is read soon after the others; `ranged`
fetches one image by an S3 range request, for the few images read out of order (the labeled pool,
the validation subset), which `pack` keeps in one local file.

The cache holds at most `max_bytes` of shards (data.stream_cache_bytes), least recently used out
first; it is shared by every DataLoader worker and DDP rank on the machine (files, file locks).
A reader pickles as plain strings, so spawned workers rebuild their own S3 client.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from sslmae.datasets.records import ShardIndex
from sslmae.datasets.shards import read_member
from sslmae.datasets.store import Store

PACKS = "packs"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ShardCache:
    """Whole shards, fetched on first use into `folder`, at most `max_bytes` of them: before a
    fetch, the least recently used shards go until the expected size fits (the largest shard
    seen). fetch(name, dest) writes shard `name` to the file `dest`."""

    def __init__(self, folder: str | Path, max_bytes: int, fetch: Callable[[str, Path], None]):
        self.folder, self.max_bytes, self.fetch = Path(folder), int(max_bytes), fetch

    def _file(self, name: str) -> Path:
        return self.folder / name.replace("/", "__")

    def path(self, name: str) -> Path:
        """The local file of shard `name`, fetched if it is not here (marked used either way)."""
        dest = self._file(name)
        if not dest.is_file():
            with _locked(self.folder / f".lock-{dest.name}"):
                if not dest.is_file():  # another worker may have fetched it meanwhile
                    self._make_room(dest.name)
                    self.fetch(name, dest)
                    if dest.stat().st_size > self.max_bytes:
                        size = dest.stat().st_size
                        dest.unlink()
                        raise ValueError(f"data.stream_cache_bytes: {self.max_bytes} bytes cannot hold shard {name} "
                                         f"({size} bytes); give the cache room for a few shards per worker")
                    self._make_room(dest.name)  # the estimate may have been short
        os.utime(dest)  # recently used
        return dest

    def _shards(self) -> list[os.DirEntry]:
        if not self.folder.is_dir():
            return []
        return [e for e in os.scandir(self.folder) if e.is_file() and not e.name.startswith(".")]

    def _make_room(self, keep: str) -> None:
        with _locked(self.folder / ".lock-evict"):
            files = sorted(self._shards(), key=lambda e: e.stat().st_mtime)
            sizes = {e.name: e.stat().st_size for e in files}
            need = max(sizes.values(), default=0) if keep not in sizes else 0
            total = sum(sizes.values())
            for entry in files:
                if total + need <= self.max_bytes:
                    break
                if entry.name == keep:
                    continue
                os.unlink(entry.path)  # a worker reading it keeps its open file; a new reader fetches again
                total -= sizes[entry.name]

    def used(self) -> int:
        return sum(e.stat().st_size for e in self._shards())


class ShardReader:
    """Bytes of the images of one shard dataset (its `ShardIndex`). cache_dir and max_bytes matter
    for a remote dataset only."""

    def __init__(self, index: ShardIndex, cache_dir: str | Path | None = None, max_bytes: int = 0):
        self.index, self.cache_dir, self.max_bytes = index, str(cache_dir or ""), int(max_bytes)
        self.remote = index.root.startswith("s3://")
        if self.remote and not cache_dir:
            raise ValueError(f"{index.root}: a remote dataset needs a local cache folder (data.cache_dir)")
        self._store, self._pid = None, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None, "_pid": None}

    def store(self) -> Store:
        if self._store is None or self._pid != os.getpid():  # boto3 clients do not survive a fork
            self._store, self._pid = Store(self.index.root), os.getpid()
        return self._store

    def cache(self) -> ShardCache:
        key = hashlib.sha256(self.index.root.encode()).hexdigest()[:16]
        return ShardCache(Path(self.cache_dir) / "shards" / key, self.max_bytes,
                          lambda name, dest: self._fetch(name, dest))

    def _fetch(self, name: str, dest: Path) -> None:
        if not self.store().get(name, dest):
            raise FileNotFoundError(f"{self.index.root}/{name}: shard not found")

    def image(self, row: int) -> bytes:
        """Row `row`'s stored bytes, from its shard (fetched whole into the cache when remote)."""
        i = self.index
        name, offset, size = i.names[i.shard[row]], int(i.offset[row]), int(i.size[row])
        if not self.remote:
            return read_member(Path(i.root) / name, offset, size)
        for _ in range(3):  # an eviction by another worker between path() and the read: fetch again
            try:
                return read_member(self.cache().path(name), offset, size)
            except FileNotFoundError:
                continue
        raise FileNotFoundError(f"{i.root}/{name}: evicted from the cache as soon as fetched "
                                "(data.stream_cache_bytes holds less than one shard in use per worker)")

    def ranged(self, row: int) -> bytes:
        """Row `row`'s stored bytes by one range request (a pread when local)."""
        i = self.index
        name, offset, size = i.names[i.shard[row]], int(i.offset[row]), int(i.size[row])
        if not self.remote:
            return read_member(Path(i.root) / name, offset, size)
        return self.store().read_range(name, offset, size)

    def pack(self, rows: np.ndarray, workers: int = 16) -> "Pack":
        """The bytes of `rows` in one local file (remote: range requests, fetched once per rows and
        dataset; local: the shards themselves serve, nothing is copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.remote:
            return Pack(self, rows, None)
        i = self.index
        key = hashlib.sha256(self.index.root.encode() + rows.tobytes() + i.offset[rows].tobytes()).hexdigest()[:24]
        path = Path(self.cache_dir) / PACKS / f"{key}.bin"
        if not path.is_file():
            with _locked(path.parent / f".lock-{key}"):
                if not path.is_file():
                    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                    with ThreadPoolExecutor(workers) as pool, open(tmp, "wb") as fh:
                        for data in pool.map(self.ranged, rows.tolist()):
                            fh.write(data)
                    os.replace(tmp, path)
        return Pack(self, rows, path)


class Pack:
    """Images of some rows, each read from one local file: the fetched pack, or the shards."""

    def __init__(self, reader: ShardReader, rows: np.ndarray, path: Path | None):
        self.reader, self.path = reader, path
        sizes = reader.index.size[rows]
        self.where = {int(r): (int(o), int(s)) for r, o, s in zip(rows, np.cumsum(sizes) - sizes, sizes)}

    def __contains__(self, row: int) -> bool:
        return int(row) in self.where

    def image(self, row: int) -> bytes:
        if self.path is None:
            return self.reader.ranged(row)
        offset, size = self.where[int(row)]
        return read_member(self.path, offset, size)
