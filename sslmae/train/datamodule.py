"""Lightning DataModule over a dataset and its split file, built from the config's `data` section
and the few training values batches depend on.

Training batches follow the mode: semi-supervised pairs B unlabeled with B labeled images
(drawn with replacement); the supervised modes use labeled images only.

Two ways to read (`data.loading`, auto by default):
- files (a folder dataset): any image in any order. With `data.cache` (the default) the images
  are decoded once into a uint8 cache (`sslmae.loading.cache`) that every loader of every epoch
  reads; the pixels are the same as decoding each time, so training results are too.
- stream (a shard dataset, local or s3://): each epoch takes the shards in a random order and the
  images of each shard together, every rank its own run of shards (`sslmae.loading.sampling`);
  workers decode. A remote dataset's shards pass through a local cache of at most
  `data.stream_cache_bytes`; the labeled pool and the validation subset, read out of order, are
  fetched once into a local pack (sslmae.loading.shard_reader).
The training loader is resumable mid-epoch (`ResumableLoader`).
"""

from __future__ import annotations

import sys

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from sslmae.config.schema import DataConfig
from sslmae.datasets.load import load_dataset
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.records import LabeledImages
from sslmae.bands import Bands
from sslmae.loading.band_stats import training_band_stats
from sslmae.loading.images import ImageTableDataset, ShardImageDataset
from sslmae.loading.pixels import pixels_for
from sslmae.loading.loaders import (ResumableLoader, check_task, eval_loader, image_cache, loader_options,
                                    shard_reader, subset_dataset)
from sslmae.loading.sampling import LabeledBatchSampler, PairedBatchSampler
from sslmae.split import composition, read_split, training_sides


def streams(section: DataConfig, data: LabeledImages) -> bool:
    """Does `data` load as a stream? data.loading, checked against the dataset's format."""
    if section.loading == "stream" and data.shards is None:
        raise DatasetError(f"{data.root}: data.loading=stream needs a shard dataset (sslmae ingest --format shards)")
    if section.loading == "files" and data.shards is not None and str(data.root).startswith("s3://"):
        raise DatasetError(f"{data.root}: data.loading=files reads images in any order, which a remote dataset "
                           "cannot serve; use data.loading=stream (or auto)")
    return section.loading == "stream" or (section.loading == "auto" and data.shards is not None)


class SSLDataModule(L.LightningDataModule):
    """data: the `data` section; batch_size: labeled images per step (train.batch_size);
    unlabeled: the mode trains on the unlabeled pool too; seed: the samplers' seed;
    eval_batch_size: validation batches (evaluate.batch_size); unlabeled_ratio: unlabeled images
    per labeled one in a step (train.unlabeled_ratio)."""

    def __init__(self, data: DataConfig, batch_size: int, unlabeled: bool, seed: int, eval_batch_size: int,
                 rank: int = 0, world_size: int = 1, unlabeled_ratio: int = 1):
        super().__init__()
        self.section, self.batch_size, self.unlabeled, self.seed = data, batch_size, unlabeled, seed
        self.unlabeled_ratio = unlabeled_ratio
        self.eval_batch_size, self.rank, self.world_size = eval_batch_size, rank, world_size
        self.data: LabeledImages | None = None
        self.subsets: np.ndarray | None = None
        self.stream = False
        self.reader = None
        self.train_loader: ResumableLoader | None = None
        self._resume_at: dict | None = None  # the training loader's position from a checkpoint
        self._cache: np.ndarray | None = None
        self._bands: Bands | None = None

    # the training loader's position travels in checkpoints (Lightning saves a data module's state)
    def state_dict(self) -> dict:
        return {"train_loader": self.train_loader.position()} if self.train_loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._resume_at = state.get("train_loader")

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = check_task(load_dataset(self.section.dir), self.section.task)
        self.subsets = read_split(self.section.split_file, self.data.ids)
        self.stream = streams(self.section, self.data)
        self.reader = shard_reader(self.data, self.section.cache_dir, self.section.stream_cache_bytes)

    def seen_ids(self) -> list[str]:
        """Ids of the images a run learns from or is selected on: labeled, unlabeled and val."""
        self.setup()
        return [self.data.ids[i] for i in np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled", "val")))]

    def composition(self) -> dict[str, str]:
        """Sizes and id digests of the labeled images, the hidden-label ones and the pool (MLflow tags)."""
        self.setup()
        return composition(self.data.ids, self.subsets, self.data.known)

    def sizes(self) -> dict[str, int]:
        """{labeled_images, hidden_label_images, pool_images} of the training sides where the data has an
        unlabeled pool (the run's metrics.json and report show them); {} where it has none."""
        self.setup()
        if self.data.known is None:
            return {}
        sides = training_sides(self.subsets, self.data.known)
        return {f"{name}_images": int(sides[side].sum())
                for name, side in (("labeled", "labeled"), ("hidden_label", "hidden"), ("pool", "pool"))}

    def bands(self) -> Bands | None:
        """The dataset's bands with the statistics of this run's training images (labeled, hidden-label
        and pool sides; a sample beyond data.band_stats_images), computed once (sslmae.loading.band_stats);
        None for 8-bit RGB data."""
        self.setup()
        if self.data.bands is None:
            return None
        if self._bands is None:
            rows = np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled")))
            self._bands = training_band_stats(self.data, rows, self.section.img_size, self.image_cache(), self.reader,
                                              cap=self.section.band_stats_images)
        return self._bands

    @property
    def label_names(self) -> list[str]:
        self.setup()
        return self.data.label_names

    def _open_cache(self) -> np.ndarray | None:
        d = self.section
        return image_cache(self.data, d.img_size, d.cache_dir if d.cache else None)

    def image_cache(self) -> np.ndarray | None:
        """The decoded-image cache of a folder dataset (None when data.cache is off, and for a shard
        dataset), opened once. Under DDP the first rank of each node builds it while the others
        wait, then all map the same file."""
        self.setup()
        if not self.section.cache or self.data.shards is not None:
            return None
        if self._cache is None:
            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                if trainer.local_rank == 0:
                    self._open_cache()
                trainer.strategy.barrier("sslmae-image-cache")
            self._cache = self._open_cache()
        return self._cache

    def _pack(self, names: tuple[str, ...]):
        """The rows of these subsets fetched into one local file (a remote dataset), else None."""
        if self.reader is None or not self.reader.remote:
            return None
        return self.reader.pack(np.flatnonzero(np.isin(self.subsets, names)))

    def _train_dataset(self, rows: np.ndarray, is_lab: np.ndarray):
        d, data = self.section, self.data
        if data.shards is not None:
            return ShardImageDataset(self.reader, rows, data.labels[rows], is_lab, d.img_size, self._pack(("labeled",)),
                                     pixels=pixels_for(data.bands))
        cache = self.image_cache()
        return ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], is_lab, d.img_size,
                                 cache=cache, rows=rows if cache is not None else None, pixels=pixels_for(data.bands))

    def train_dataloader(self) -> DataLoader:
        self.setup()
        d = self.section
        rows = np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled") if self.unlabeled else ("labeled",)))
        is_lab = self.subsets[rows] == "labeled"
        dataset = self._train_dataset(rows, is_lab)
        lab, unl = np.flatnonzero(is_lab), np.flatnonzero(~is_lab)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (self.rank, self.world_size)
        shard = dict(seed=self.seed, rank=rank, world_size=world)
        if self.stream:
            shard.update(order="shards", shard_of=self.data.shards.shard[rows])
        if self.unlabeled:
            sampler = PairedBatchSampler(unl, lab, self.batch_size, pairing=d.pairing, drop_last=d.drop_last,
                                         ratio=self.unlabeled_ratio, **shard)
            if rank == 0:  # what an epoch is, where the pool may be 1,000 x the labeled images
                steps = len(sampler) * world
                print(f"train: an epoch is one pass over the unlabeled pool: {len(unl)} images, "
                      f"{self.unlabeled_ratio * self.batch_size} a step, {steps} steps; the {len(lab)} labeled "
                      f"images, {self.batch_size} a step, cycle {steps * self.batch_size / len(lab):.1f} times",
                      file=sys.stderr, flush=True)
        else:
            sampler = LabeledBatchSampler(lab, self.batch_size, drop_last=d.drop_last, **shard)
        self.train_loader = ResumableLoader(dataset, batch_sampler=sampler, **loader_options(d.num_workers))
        if self._resume_at is not None:
            self.train_loader.resume(self._resume_at)
            self._resume_at = None
        return self.train_loader

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        ds = subset_dataset(self.data, self.subsets, ("val",), self.section.img_size, cache=self.image_cache(),
                            reader=self.reader, pack=self._pack(("val",)))
        if len(ds) == 0:
            return []
        return eval_loader(ds, self.eval_batch_size, self.section.num_workers)
