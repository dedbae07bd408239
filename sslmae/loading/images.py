"""Torch datasets over an image table: fixed-size uint8 images, decoded per item from files or
from a shard dataset's bytes, or read from a decoded-image cache (`sslmae.loading.cache`).

Workers only decode and resize (or, with the cache, copy one row); augmentation and
normalisation happen per batch on the training device (`sslmae.augment`), which keeps
the CPU loaders cheap.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sslmae.loading.pixels import RGB, decode_rgb, rgb_array  # noqa: F401 (the RGB rule, re-exported)


def load_image(path: Path, size: int) -> torch.Tensor:
    """Decode `path` to (3, size, size) uint8 RGB (bilinear resize when needed)."""
    return RGB.owned(RGB.decode(path, size))


class ImageTableDataset(Dataset):
    """Item i: (image (3, S, S) uint8, target (C,) float32, labeled () bool); for a dataset with
    bands (`pixels`, sslmae.loading.pixels), image (B, S, S) float32 at the source's values.

    `labeled[i]` False marks an image whose labels the model must not see (the unlabeled
    pool); its target is returned as zeros so no label information can leak.

    Without `cache`, item i decodes `paths[i]` (`load_image`). With `cache`, an
    (M, S, S, 3) uint8 array of decoded images (`sslmae.loading.cache.open_cache`, usually a
    read-only memory map shared by all workers) and `rows` (N,) ints, item i is the
    read-only (3, S, S) view `cache[rows[i]]` permuted to channels first: the same pixels,
    no decoding, no copy until the DataLoader's collate stacks the batch. Do not write to
    it; copy first. A dataset with bands: a cache of (M, B, S, S) rows at the source dtype.
    """

    def __init__(
        self,
        paths: list[Path],
        labels: np.ndarray,
        labeled: np.ndarray,
        img_size: int,
        cache: np.ndarray | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
        pixels=RGB,
    ):
        if not (len(paths) == len(labels) == len(labeled)):
            raise ValueError("paths, labels and labeled must have the same length")
        self.paths = list(paths)
        self.labeled = np.asarray(labeled, dtype=bool)
        self.targets = torch.as_tensor(np.asarray(labels, dtype=np.float32) * self.labeled[:, None])
        self.img_size, self.pixels = img_size, pixels
        self.cache = cache
        self.rows = None
        if cache is not None:
            if rows is None:
                raise ValueError("rows: required with a cache (the cache row of each item)")
            self.rows = np.asarray(rows, dtype=np.int64)
            if self.rows.shape != (len(self.paths),):
                raise ValueError(f"rows: expected {len(self.paths)} row indices, got shape {self.rows.shape}")
            if cache.dtype != pixels.dtype or cache.shape[1:] != pixels.shape(img_size):
                raise ValueError(f"cache: expected (M, {', '.join(map(str, pixels.shape(img_size)))}) {pixels.dtype}, "
                                 f"got {tuple(cache.shape)} {cache.dtype}")
            if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= len(cache)):
                raise ValueError(f"rows: indices must lie in [0, {len(cache)})")
        elif rows is not None:
            raise ValueError("rows: only meaningful with a cache")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if self.cache is not None:
            img = self.pixels.tensor(self.cache[self.rows[i]])
        else:
            img = self.pixels.owned(self.pixels.decode(self.paths[i], self.img_size))
        return img, self.targets[i], torch.tensor(bool(self.labeled[i]))

    # A memory-mapped cache (as `open_cache` returns: a whole .npy file) travels to spawned
    # workers as its file name, not its bytes; forked workers simply inherit the mapping.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        cache = state.get("cache")
        if isinstance(cache, np.memmap) and cache.filename is not None and isinstance(cache.base, mmap.mmap):
            mode = "c" if cache.flags.writeable else "r"
            state["cache"] = ("npy-memmap", str(cache.filename), mode, tuple(cache.shape))
        return state

    def __setstate__(self, state: dict) -> None:
        cache = state.get("cache")
        if isinstance(cache, tuple) and cache and cache[0] == "npy-memmap":
            _, filename, mode, shape = cache
            arr = np.load(filename, mmap_mode=mode)
            if arr.shape != shape or arr.dtype != state["pixels"].dtype:
                raise ValueError(f"{filename}: cache changed since the dataset was made "
                                 f"(shape {arr.shape}, expected {shape})")
            state["cache"] = arr
        self.__dict__.update(state)


class ShardImageDataset(Dataset):
    """Item i: (image (3, S, S) uint8, target (C,) float32, labeled () bool) of manifest row
    `rows[i]` of a shard dataset, its bytes from `pack` when it holds the row, else from its shard
    through `reader` (sslmae.loading.shard_reader), decoded by `pixels` (RGB: `decode_rgb`).

    `labeled[i]` False: the target is zeros, as in ImageTableDataset."""

    def __init__(self, reader, rows: np.ndarray, labels: np.ndarray, labeled: np.ndarray, img_size: int, pack=None,
                 pixels=RGB):
        if not (len(rows) == len(labels) == len(labeled)):
            raise ValueError("rows, labels and labeled must have the same length")
        self.reader, self.pack, self.img_size, self.pixels = reader, pack, img_size, pixels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labeled = np.asarray(labeled, dtype=bool)
        self.targets = torch.as_tensor(np.asarray(labels, dtype=np.float32) * self.labeled[:, None])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = int(self.rows[i])
        data = self.pack.image(row) if self.pack is not None and row in self.pack else self.reader.image(row)
        img = self.pixels.owned(self.pixels.decode(data, self.img_size))
        return img, self.targets[i], torch.tensor(bool(self.labeled[i]))
