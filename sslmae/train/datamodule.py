"""Lightning DataModule over a labels-csv dataset and a split file.

Training batches follow the mode: semi-supervised pairs B unlabeled with B labeled images
(drawn with replacement); the supervised modes use labeled images only.

With `data.cache` (the default) the images are decoded once into a uint8 cache
(`sslmae.data.cache`) that every loader of every epoch reads; the pixels are the same
as decoding each time, so training results are too.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from sslmae.config import Config
from sslmae.data.cache import open_cache
from sslmae.data.images import ImageTableDataset
from sslmae.data.sampling import LabeledBatchSampler, PairedBatchSampler
from sslmae.datasets.load import load_dataset
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.records import LabeledImages
from sslmae.model.modes import MODES
from sslmae.split import read_split


def check_task(data: LabeledImages, task: str) -> LabeledImages:
    """`data`, if its task (mlc: several labels per image; mcc: exactly one) is the one asked for."""
    if data.task != task:
        raise DatasetError(f"{data.root}: the dataset is {data.task} (its manifest says so) but data.task is {task}; "
                           f"set data.task={data.task}")
    return data


def dataset_cache(data: LabeledImages, cfg: Config) -> np.ndarray | None:
    """(N, S, S, 3) uint8 memory map of all of `data`'s images at data.img_size (built on
    first use), or None when data.cache is off."""
    if not cfg.data.cache:
        return None
    return open_cache(cfg.data.cache_dir, data.paths, cfg.data.img_size, root=data.root)


def subset_dataset(data: LabeledImages, subsets: np.ndarray, names: tuple[str, ...], img_size: int,
                   cache: np.ndarray | None = None) -> ImageTableDataset:
    """Evaluation dataset of the rows whose subset is in `names` (labels visible).
    cache: `dataset_cache(data, ...)` (rows of the whole dataset), or None to decode per item."""
    rows = np.flatnonzero(np.isin(subsets, names))
    return ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], np.ones(len(rows), bool), img_size,
                             cache=cache, rows=rows if cache is not None else None)


def _loader_options(num_workers: int) -> dict:
    # Workers stay alive across epochs, and pin their batches for asynchronous host->GPU copies.
    return dict(num_workers=num_workers, persistent_workers=num_workers > 0,
                pin_memory=num_workers > 0 and torch.cuda.is_available())


def eval_loader(dataset: ImageTableDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **_loader_options(num_workers))


class SSLDataModule(L.LightningDataModule):
    def __init__(self, cfg: Config, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.data: LabeledImages | None = None
        self.subsets: np.ndarray | None = None
        self._cache: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = check_task(load_dataset(self.cfg.data.dir), self.cfg.data.task)
        self.subsets = read_split(self.cfg.data.split_file, self.data.ids)

    @property
    def label_names(self) -> list[str]:
        self.setup()
        return self.data.label_names

    def image_cache(self) -> np.ndarray | None:
        """The decoded-image cache (None when data.cache is off), opened once. Under DDP the
        first rank of each node builds it while the others wait, then all map the same file."""
        self.setup()
        if not self.cfg.data.cache:
            return None
        if self._cache is None:
            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                if trainer.local_rank == 0:
                    dataset_cache(self.data, self.cfg)
                trainer.strategy.barrier("sslmae-image-cache")
            self._cache = dataset_cache(self.data, self.cfg)
        return self._cache

    def train_dataloader(self) -> DataLoader:
        self.setup()
        cfg, data = self.cfg, self.data
        mode = MODES[cfg.loss.mode]
        rows = np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled") if mode.unlabeled else ("labeled",)))
        is_lab = self.subsets[rows] == "labeled"
        cache = self.image_cache()
        dataset = ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], is_lab, cfg.data.img_size,
                                    cache=cache, rows=rows if cache is not None else None)
        lab, unl = np.flatnonzero(is_lab), np.flatnonzero(~is_lab)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (self.rank, self.world_size)
        shard = dict(seed=cfg.seed, rank=rank, world_size=world)
        if mode.unlabeled:
            sampler = PairedBatchSampler(unl, lab, cfg.train.batch_size, pairing=cfg.data.pairing,
                                         drop_last=cfg.data.drop_last, **shard)
        else:
            sampler = LabeledBatchSampler(lab, cfg.train.batch_size, drop_last=cfg.data.drop_last, **shard)
        return DataLoader(dataset, batch_sampler=sampler, **_loader_options(cfg.data.num_workers))

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        ds = subset_dataset(self.data, self.subsets, ("val",), self.cfg.data.img_size, cache=self.image_cache())
        if len(ds) == 0:
            return []
        return eval_loader(ds, self.cfg.evaluate.batch_size, self.cfg.data.num_workers)
