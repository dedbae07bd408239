"""Loaders over a dataset and its split that evaluation, threshold tuning and training share:
the dataset of a group of subsets, the decode-once cache of a whole dataset, and the
DataLoader options."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from sslmae.datasets.problems import DatasetError
from sslmae.datasets.records import LabeledImages
from sslmae.loading.cache import open_cache
from sslmae.loading.images import ImageTableDataset


def check_task(data: LabeledImages, task: str) -> LabeledImages:
    """`data`, if its task (mlc: several labels per image; mcc: exactly one) is the one asked for."""
    if data.task != task:
        raise DatasetError(f"{data.root}: the dataset is {data.task} (its manifest says so) but data.task is {task}; "
                           f"set data.task={data.task}")
    return data


def image_cache(data: LabeledImages, img_size: int, cache_dir: str | None) -> np.ndarray | None:
    """(N, S, S, 3) uint8 memory map of all of `data`'s images at `img_size` (built on first
    use) in `cache_dir`, or None when `cache_dir` is None (data.cache off: decode per item)."""
    if cache_dir is None:
        return None
    return open_cache(cache_dir, data.paths, img_size, root=data.root)


def subset_dataset(data: LabeledImages, subsets: np.ndarray, names: tuple[str, ...], img_size: int,
                   cache: np.ndarray | None = None) -> ImageTableDataset:
    """Evaluation dataset of the rows whose subset (N,) is in `names` (labels visible).
    cache: `image_cache(data, ...)` (rows of the whole dataset), or None to decode per item."""
    rows = np.flatnonzero(np.isin(subsets, names))
    return ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], np.ones(len(rows), bool), img_size,
                             cache=cache, rows=rows if cache is not None else None)


def loader_options(num_workers: int) -> dict:
    # Workers stay alive across epochs, and pin their batches for asynchronous host->GPU copies.
    return dict(num_workers=num_workers, persistent_workers=num_workers > 0,
                pin_memory=num_workers > 0 and torch.cuda.is_available())


def eval_loader(dataset: ImageTableDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches (uint8 imgs (B, 3, S, S), targets (B, C), labeled (B,)) in dataset order."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **loader_options(num_workers))
