"""Loaders over a dataset and its split that evaluation, threshold tuning and training share:
the dataset of a group of subsets (image files, or a shard dataset's bytes), the decode-once
cache of a folder dataset, the reader of a shard dataset, the DataLoader options, and the
training DataLoader that Lightning can checkpoint mid-epoch."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from sslmae.datasets.problems import DatasetError
from sslmae.datasets.records import LabeledImages
from sslmae.loading.cache import open_cache
from sslmae.loading.images import ImageTableDataset, ShardImageDataset
from sslmae.loading.pixels import pixels_for
from sslmae.loading.shard_reader import ShardReader


def check_task(data: LabeledImages, task: str) -> LabeledImages:
    """`data`, if its task (mlc: several labels per image; mcc: exactly one) is the one asked for."""
    if data.task != task:
        raise DatasetError(f"{data.root}: the dataset is {data.task} (its manifest says so) but data.task is {task}; "
                           f"set data.task={data.task}")
    return data


def image_cache(data: LabeledImages, img_size: int, cache_dir: str | None) -> np.ndarray | None:
    """(N, S, S, 3) uint8 memory map of all of `data`'s images at `img_size` (a dataset with bands:
    (N, C, S, S) at its dtype), built on first use in `cache_dir`, or None when `cache_dir` is None
    (data.cache off: decode per item)."""
    if cache_dir is None:
        return None
    return open_cache(cache_dir, data.paths, img_size, root=data.root, pixels=pixels_for(data.bands))


def shard_reader(data: LabeledImages, cache_dir: str | None, max_bytes: int) -> ShardReader | None:
    """The reader of a shard dataset's bytes (remote shards cached in cache_dir, at most max_bytes),
    or None for a folder dataset."""
    if data.shards is None:
        return None
    return ShardReader(data.shards, cache_dir, max_bytes)


def subset_dataset(data: LabeledImages, subsets: np.ndarray, names: tuple[str, ...], img_size: int,
                   cache: np.ndarray | None = None, reader: ShardReader | None = None, pack=None):
    """Evaluation dataset of the rows whose subset (N,) is in `names` (labels visible), in manifest
    order (a shard dataset's shard order). cache: `image_cache(data, ...)` (rows of the whole
    dataset), or None to decode per item; a shard dataset reads through `reader` (and `pack`, a
    local copy of some rows' bytes)."""
    rows = np.flatnonzero(np.isin(subsets, names))
    if data.shards is not None:
        return ShardImageDataset(reader, rows, data.labels[rows], np.ones(len(rows), bool), img_size, pack,
                                 pixels=pixels_for(data.bands))
    return ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], np.ones(len(rows), bool), img_size,
                             cache=cache, rows=rows if cache is not None else None, pixels=pixels_for(data.bands))


def loader_options(num_workers: int) -> dict:
    """Workers stay alive across epochs, and pin their batches for asynchronous host->GPU copies.
    Each loader draws its workers' seeds from a generator of its own: a new iterator (a resumed
    run makes one where the interrupted run reused its workers) never moves the global RNG that
    masks and augmentation draw from, so a resumed run continues exactly."""
    return dict(num_workers=num_workers, persistent_workers=num_workers > 0,
                pin_memory=num_workers > 0 and torch.cuda.is_available(), generator=torch.Generator().manual_seed(0))


def eval_loader(dataset: ImageTableDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches (uint8 imgs (B, 3, S, S), targets (B, C), labeled (B,)) in dataset order."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **loader_options(num_workers))


class ResumableLoader(DataLoader):
    """A DataLoader over a resumable batch sampler (sslmae.loading.sampling): `position()` says where
    an epoch stands, `resume(position)` makes the next iteration continue from there. `consumed`:
    batches of the current epoch the training loop has finished (set by
    `sslmae.train.checkpoints.LoaderPosition`). The data module keeps the position in checkpoints
    (its state_dict), since Lightning's own restore of a stateful loader comes after our optimizer
    setup has already built the loader."""

    consumed = 0

    def position(self) -> dict:
        sampler = self.batch_sampler
        if self.consumed >= len(sampler):  # a finished epoch: the next one starts from its beginning
            return {"epoch": sampler.epoch + 1, "consumed": 0}
        return {"epoch": sampler.epoch, "consumed": self.consumed}

    def resume(self, position: dict) -> None:
        self.batch_sampler.resume_at(int(position["epoch"]), int(position["consumed"]))
        self.consumed = int(position["consumed"])
