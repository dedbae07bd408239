"""Batch samplers: semi-supervised pairing and plain labeled batches, shardable over ranks.

Semi-supervised (the paper's scheme): an epoch walks the unlabeled pool once; each batch
pairs B unlabeled images with B labeled ones drawn with replacement. Indices refer to one
dataset holding both pools. With `world_size > 1` each rank takes a disjoint shard of the
epoch's batches, so every unlabeled image is seen once per epoch across ranks.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler):
    def __init__(self, seed: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        return batches[self.rank :: self.world_size]


def _batch_count(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per epoch: all of the last, smaller one unless drop_last (but at least one), then
    padded to a multiple of the world size so every rank takes the same number of steps (DDP)."""
    count = n // batch_size if drop_last and n >= batch_size else math.ceil(n / batch_size)
    return math.ceil(count / world_size) * world_size


class PairedBatchSampler(_EpochSampler):
    """Yields [u_1..u_B, l_1..l_B]: B unlabeled (without replacement) + B labeled (with).

    pairing 'redraw': the labeled partners are drawn afresh for every batch of every epoch;
    'fixed': each unlabeled image gets one labeled partner for the whole run, drawn once with
    the seed (the authors' RandomState(42).choice upsampling), and the pairs are shuffled per epoch.
    """

    def __init__(self, unlabeled: np.ndarray, labeled: np.ndarray, batch_size: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1, pairing: str = "redraw",
                 drop_last: bool = False):
        super().__init__(seed, rank, world_size)
        if len(unlabeled) == 0 or len(labeled) == 0:
            raise ValueError("semi-supervised batches need both labeled and unlabeled images")
        if pairing not in ("redraw", "fixed"):
            raise ValueError(f"pairing: must be 'redraw' or 'fixed', got {pairing!r}")
        self.unlabeled, self.labeled, self.batch_size = np.asarray(unlabeled), np.asarray(labeled), batch_size
        self.pairing, self.drop_last = pairing, drop_last
        self.partner = np.random.RandomState(seed).choice(self.labeled, size=len(self.unlabeled), replace=True)

    def _batches(self) -> list[list[int]]:
        rng = self._rng()
        perm = rng.permutation(len(self.unlabeled))
        order, partners = self.unlabeled[perm], self.partner[perm]
        out = []
        for b in range(_batch_count(len(order), self.batch_size, self.world_size, self.drop_last)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            u, fixed = order[sl], partners[sl]
            if len(u) == 0:  # padding batch: reuse the start of the permutation
                u, fixed = order[: self.batch_size], partners[: self.batch_size]
            lab = fixed if self.pairing == "fixed" else rng.choice(self.labeled, size=len(u), replace=True)
            out.append([int(i) for i in u] + [int(i) for i in lab])
        return out

    def __iter__(self):
        return iter(self._shard(self._batches()))

    def __len__(self) -> int:
        return _batch_count(len(self.unlabeled), self.batch_size, self.world_size, self.drop_last) // self.world_size


class LabeledBatchSampler(_EpochSampler):
    """Shuffled batches of the labeled pool, each image once per epoch."""

    def __init__(self, labeled: np.ndarray, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        super().__init__(seed, rank, world_size)
        if len(labeled) == 0:
            raise ValueError("no labeled images to train on")
        self.labeled, self.batch_size, self.drop_last = np.asarray(labeled), batch_size, drop_last

    def _batches(self) -> list[list[int]]:
        order = self._rng().permutation(self.labeled)
        n = _batch_count(len(order), self.batch_size, self.world_size, self.drop_last)
        batches = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(n)]
        return [[int(i) for i in (b if len(b) else order[: self.batch_size])] for b in batches]

    def __iter__(self):
        return iter(self._shard(self._batches()))

    def __len__(self) -> int:
        return _batch_count(len(self.labeled), self.batch_size, self.world_size, self.drop_last) // self.world_size
