"""Lightning DataModule over a labels-csv dataset and a split file.

Training batches follow the mode: semi-supervised pairs B unlabeled with B labeled images
(drawn with replacement); the supervised modes use labeled images only.
"""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from sslmae.config import Config
from sslmae.data.images import ImageTableDataset
from sslmae.data.sampling import LabeledBatchSampler, PairedBatchSampler
from sslmae.datasets.load import load_dataset
from sslmae.datasets.records import LabeledImages
from sslmae.model.network import MODES
from sslmae.split import read_split


def subset_dataset(data: LabeledImages, subsets: np.ndarray, names: tuple[str, ...], img_size: int) -> ImageTableDataset:
    """Evaluation dataset of the rows whose subset is in `names` (labels visible)."""
    rows = np.flatnonzero(np.isin(subsets, names))
    return ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], np.ones(len(rows), bool), img_size)


def eval_loader(dataset: ImageTableDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=False)


class SSLDataModule(L.LightningDataModule):
    def __init__(self, cfg: Config, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.data: LabeledImages | None = None
        self.subsets: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = load_dataset(self.cfg.data.dir)
        self.subsets = read_split(self.cfg.data.split_file, self.data.ids)

    @property
    def label_names(self) -> list[str]:
        self.setup()
        return self.data.label_names

    def train_dataloader(self) -> DataLoader:
        self.setup()
        cfg, data = self.cfg, self.data
        mode = MODES[cfg.loss.mode]
        rows = np.flatnonzero(np.isin(self.subsets, ("labeled", "unlabeled") if mode.unlabeled else ("labeled",)))
        is_lab = self.subsets[rows] == "labeled"
        dataset = ImageTableDataset([data.paths[i] for i in rows], data.labels[rows], is_lab, cfg.data.img_size)
        lab, unl = np.flatnonzero(is_lab), np.flatnonzero(~is_lab)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (self.rank, self.world_size)
        shard = dict(seed=cfg.seed, rank=rank, world_size=world)
        if mode.unlabeled:
            sampler = PairedBatchSampler(unl, lab, cfg.train.batch_size, **shard)
        else:
            sampler = LabeledBatchSampler(lab, cfg.train.batch_size, **shard)
        w = cfg.data.num_workers
        return DataLoader(dataset, batch_sampler=sampler, num_workers=w, persistent_workers=w > 0)

    def val_dataloader(self) -> DataLoader | list:
        self.setup()
        ds = subset_dataset(self.data, self.subsets, ("val",), self.cfg.data.img_size)
        if len(ds) == 0:
            return []
        return eval_loader(ds, self.cfg.evaluate.batch_size, self.cfg.data.num_workers)
