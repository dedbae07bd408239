"""Lightning DataModule over a dataset folder and its split file, built from the config's `data`
section and the few training values batches depend on.

Training batches follow the mode: semi-supervised pairs B unlabeled with B labeled images
(drawn with replacement); the supervised modes use labeled images only.

With `data.cache` (the default) the images are decoded once into a uint8 cache
(`sslmae.loading.cache`) that every loader of every epoch reads; the pixels are the same
as decoding each time, so training results are too.
"""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from sslmae.config.schema import DataConfig
from sslmae.datasets.load import load_dataset
from sslmae.datasets.records import LabeledImages
from sslmae.loading.images import ImageTableDataset
from sslmae.loading.loaders import check_task, eval_loader, image_cache, loader_options, subset_dataset
from sslmae.loading.sampling import LabeledBatchSampler, PairedBatchSampler
from sslmae.split import read_split


class SSLDataModule(L.LightningDataModule):
    """data: the `data` section; batch_size: labeled images per step (train.batch_size);
    unlabeled: the mode trains on the unlabeled pool too; seed: the samplers' seed;
    eval_batch_size: validation batches (evaluate.batch_size)."""

    def __init__(self, data: DataConfig, batch_size: int, unlabeled: bool, seed: int, eval_batch_size: int,
                 rank: int = 0, world_size: int = 1):
        super().__init__()
        self.section, self.batch_size, self.unlabeled, self.seed = data, batch_size, unlabeled, seed
        self.eval_batch_size, self.rank, self.world_size = eval_batch_size, rank, world_size
        self.data: LabeledImages | None = None
        self.subsets: np.ndarray | None = None
        self._cache: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = check_task(load_dataset(self.section.dir), self.section.task)
        self.subsets = read_split(self.section.split_file, self.data.ids)

    @property
    def label_names(self) -> list[str]:
        self.setup()
        return self.data.label_names

    def _open_cache(self) -> np.ndarray | None:
        d = self.section
        return image_cache(self.data, d.img_size, d.cache_dir if d.cache else None)

    def image_cache(self) -> np.ndarray | None:
        """The decoded-image cache (None when data.cache is off), opened once. Under DDP the
        first rank of each node builds it while the others wait, then all map the same file."""
        self.setup()
        if not self.section.cache:
            return None
        if self._cache is None:
            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                if trainer.local_rank == 0:
                    self._open_cache()
                trainer.strategy.barrier("sslmae-image-cache")
            self._cache = self._open_cache()
        return self._cache

    def train_dataloader(self) -> DataLoader:
        self.setup()
        d, data = self.section, self.data
        rows = np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled") if self.unlabeled else ("labeled",)))
        is_lab = self.subsets[rows] == "labeled"
        cache = self.image_cache()
        dataset = ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], is_lab, d.img_size,
                                    cache=cache, rows=rows if cache is not None else None)
        lab, unl = np.flatnonzero(is_lab), np.flatnonzero(~is_lab)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (self.rank, self.world_size)
        shard = dict(seed=self.seed, rank=rank, world_size=world)
        if self.unlabeled:
            sampler = PairedBatchSampler(unl, lab, self.batch_size, pairing=d.pairing, drop_last=d.drop_last, **shard)
        else:
            sampler = LabeledBatchSampler(lab, self.batch_size, drop_last=d.drop_last, **shard)
        return DataLoader(dataset, batch_sampler=sampler, **loader_options(d.num_workers))

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        ds = subset_dataset(self.data, self.subsets, ("val",), self.section.img_size, cache=self.image_cache())
        if len(ds) == 0:
            return []
        return eval_loader(ds, self.eval_batch_size, self.section.num_workers)
