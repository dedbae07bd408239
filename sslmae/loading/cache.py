"""Decoded-image cache: decode every image once, then every epoch reads pixels.

Training used to decode and resize every JPEG/PNG in every epoch; that decode was most of
the DataLoader workers' CPU time. The cache is one `.npy` file per (dataset files,
img_size): an (N, S, S, 3) uint8 array, channels last, RGB, row i the pixels of `paths[i]`
exactly as `sslmae.loading.images.load_image(paths[i], S)` returns them (the same
`decode_rgb`), channels last. It is opened with `np.load(mmap_mode="r")`: a read-only
memory map, so every DataLoader worker (and every DDP rank on the node) reads the same
page-cache pages, and an epoch costs one memcpy per image.

File: `<cache_dir>/<key>.npy`, key = sha256 over a format version, the Pillow version
(the resize is Pillow's), S, and (path relative to the dataset root, size in bytes,
mtime_ns) of every image in order. Changing, adding, removing or reordering an image, or
changing S, gives another key and so a rebuild. After a build, the other caches in `cache_dir`
are removed unless a running process has one open (each opener holds a shared `flock` on its
file until it exits; removal takes the lock without waiting, so a file in use stays): a
retraining on grown data leaves one cache, not one per version of the data. Size on disk:
N * S * S * 3 bytes (UC Merced, 2100 images at 224 px: 316 MB). A dataset with bands
(sslmae.loading.pixels) keeps (N, C, S, S) at its source dtype (uint16 stays uint16): N * C * S * S *
bytes per value.

Built atomically: the array is filled in a temporary file in `cache_dir`
(`np.lib.format.open_memmap`) and renamed onto `<key>.npy` only when complete, so an
interrupted build leaves nothing behind and concurrent builders (DDP ranks) cannot see
half a file. Decoding uses a thread pool (Pillow releases the GIL while decoding).

No side effects at import.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL

from sslmae.atomic import atomic_file
from sslmae.progress import Stopwatch, progress
from sslmae.loading.pixels import RGB

FORMAT_VERSION = 1  # bump when the stored layout or the decoding rule changes
CHUNK = 256  # images decoded per thread-pool round (bounds the pending futures)


def _rel(path: Path, root: Path | None) -> str:
    """`path` relative to `root`, '/'-separated (string arithmetic on absolute paths, no
    file system calls; a path outside root comes out as '../...')."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, os.path.abspath(root)) if root is not None else path
    return rel.replace(os.sep, "/")


def cache_key(paths: Sequence[Path], size: int, root: Path | None = None, pixels=RGB) -> str:
    """sha256 hex over format version, Pillow version, size, the pixel format's key (nothing for
    RGB) and (relative path, bytes, mtime_ns) of each file in order. Stats every file (raises
    FileNotFoundError for a missing one)."""
    h = hashlib.sha256()
    h.update(f"sslmae-image-cache v{FORMAT_VERSION}\0pillow {PIL.__version__}\0size {int(size)}\0"
             f"{pixels.key}n {len(paths)}\0".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{_rel(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_file(cache_dir: str | Path, paths: Sequence[Path], size: int, root: Path | None = None,
               pixels=RGB) -> Path:
    """Where the cache of (paths, size) lives: `<cache_dir>/<key>.npy`."""
    return Path(cache_dir) / f"{cache_key(paths, size, root, pixels)}.npy"


def build_cache(paths: Sequence[Path], size: int, out: str | Path, workers: int | None = None, pixels=RGB) -> Path:
    """Decode `paths` at `size` into `out`, an (N, size, size, 3) uint8 .npy (a dataset with bands:
    (N, C, size, size) at its dtype); atomic.

    workers: decoding threads (default min(8, CPUs)); 1 decodes in this thread. Any error
    (an unreadable image, an interrupt) removes the temporary file and propagates.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    shape = (n, *pixels.shape(size))
    with atomic_file(out) as tmp:
        if n == 0:  # a zero-length memory map is not possible; an empty .npy is
            with open(tmp, "wb") as fh:  # a file handle: np.save would append .npy to a name
                np.save(fh, np.zeros(shape, pixels.dtype))
        else:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=pixels.dtype, shape=shape)
            try:
                _fill(arr, paths, size, workers, pixels)
                arr.flush()
            finally:
                del arr  # unmap before the rename (and before unlinking on error)
    return out


def _fill(arr: np.ndarray, paths: Sequence[Path], size: int, workers: int | None, pixels=RGB) -> None:
    """arr[i] = pixels.decode(paths[i], size) for all i (RGB: decode_rgb); arr: (N, *pixels.shape(size))."""

    def one(i: int) -> None:
        arr[i] = pixels.decode(paths[i], size)

    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [range(s, min(s + CHUNK, len(paths))) for s in range(0, len(paths), CHUNK)]
    shown = progress(chunks, f"image cache: decoding {len(paths)} images (chunks of {CHUNK})")
    if workers <= 1:
        for chunk in shown:
            for i in chunk:
                one(i)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sslmae-cache") as pool:
        for chunk in shown:
            # list(): wait for the chunk and re-raise the first error; the pool's exit
            # then waits only for this chunk's stragglers, not the whole dataset
            list(pool.map(one, chunk))


def open_cache(
    cache_dir: str | Path,
    paths: Sequence[Path],
    size: int,
    root: Path | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
    pixels=RGB,
) -> np.memmap:
    """The (N, size, size, 3) uint8 read-only memory map of `paths` decoded at `size`,
    building it first when `<cache_dir>/<key>.npy` does not exist (or does not hold an
    array of that shape, e.g. a file damaged outside sslmae). log: where the one line
    about a build goes (default: stderr; stdout may carry a command's result)."""
    log = log or _stderr
    path = cache_file(cache_dir, paths, size, root, pixels)
    shape = (len(paths), *pixels.shape(size))
    if path.is_file():
        arr = _open(path, shape, pixels.dtype)
        if arr is not None:
            return arr
        log(f"image cache {path}: not an array of shape {shape}; rebuilding")
    log(f"image cache: decoding {len(paths)} images at {size} px once into {path} "
        f"({np.prod(shape, dtype=np.int64) * np.dtype(pixels.dtype).itemsize / 2**20:.1f} MiB)")
    took = Stopwatch()
    build_cache(paths, size, path, workers, pixels)
    log(f"image cache: {len(paths)} images decoded in {took} into {path}")
    removed = prune(cache_dir, keep=path)
    if removed:
        log(f"image cache: removed {len(removed)} cache(s) of other data from {cache_dir} "
            f"({sum(size for _, size in removed) / 2**20:.1f} MiB)")
    arr = _open(path, shape, pixels.dtype)
    if arr is None:  # pragma: no cover - we just wrote it
        raise RuntimeError(f"{path}: the image cache just built cannot be read back")
    return arr


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_HELD: dict[str, int] = {}  # cache file -> a descriptor holding a shared flock, for the process's life


def _hold(path: Path) -> None:
    """Mark `path` in use by this process (and the DataLoader workers it forks) until it exits."""
    key = str(path.resolve())
    if key not in _HELD:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _HELD[key] = fd


def prune(cache_dir: str | Path, keep: Path) -> list[tuple[Path, int]]:
    """Remove every cache file in `cache_dir` but `keep` that no process holds: (path, bytes) removed."""
    removed = []
    for other in Path(cache_dir).glob("*.npy"):
        if other.name == keep.name or other.name.startswith(".") or str(other.resolve()) in _HELD:
            continue
        try:
            fd = os.open(other, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while any process holds it shared
            size = os.fstat(fd).st_size
            other.unlink()
            removed.append((other, size))
        except (BlockingIOError, FileNotFoundError):
            pass
        finally:
            os.close(fd)
    return removed


def _open(path: Path, shape: tuple[int, ...], dtype: str = "uint8") -> np.ndarray | None:
    try:
        arr = np.load(path, mmap_mode="r") if shape[0] else np.load(path)
    except (ValueError, OSError, EOFError):
        return None
    if arr.shape != shape or arr.dtype != dtype:
        return None
    _hold(path)
    return arr
