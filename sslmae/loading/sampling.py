"""Batch samplers: semi-supervised pairing and plain labeled batches, shardable over ranks,
resumable mid-epoch.

Semi-supervised (the paper's scheme): an epoch walks the unlabeled pool once, without
replacement; each batch takes mu x B unlabeled images (`ratio`, train.unlabeled_ratio: FixMatch and
USB's uratio; 1, the authors') and B labeled ones drawn with replacement, so the labeled rows cycle
many times an epoch when the pool is much larger. Indices refer to one
dataset holding both pools. With `world_size > 1` each rank takes a disjoint shard of the
epoch's batches, so every unlabeled image is seen once per epoch across ranks.

Two orders (`order`): `shuffle` permutes the pool (files on disk), `shards` shuffles the shards
and the images within each one, then takes them shard by shard (`shard_grouped`), and gives each
rank one contiguous run of batches: a stream reads each shard once per epoch, on one rank.
`resume_at(epoch, batches)` makes the next iteration of that epoch start after `batches` of this
rank's batches (a mid-epoch checkpoint); the order of an epoch is a function of the seed and the
epoch alone, so a resumed epoch continues with exactly the batches it would have given.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


def shard_grouped(pool: np.ndarray, shard_of: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions into `pool` (N,) reordered: its shards (`shard_of` (N,) ints) in a random order,
    each shard's items shuffled and kept together."""
    shards = rng.permutation(np.unique(shard_of))
    rank = np.empty(shards.max() + 1 if len(shards) else 0, dtype=np.int64)
    rank[shards] = np.arange(len(shards))
    jitter = rng.random(len(pool))
    return np.lexsort((jitter, rank[shard_of]))


ORDERS = ("shuffle", "shards")


class _EpochSampler(Sampler):
    def __init__(self, seed: int, rank: int, world_size: int, order: str = "shuffle",
                 shard_of: np.ndarray | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        if order not in ORDERS or (order == "shards") != (shard_of is not None):
            raise ValueError(f"order: {ORDERS}, with shard_of exactly for 'shards'; got {order!r}")
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        self.order, self.shard_of = order, shard_of
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._resume is not None and self._resume[0] != epoch:
            self._resume = None

    def resume_at(self, epoch: int, batches: int) -> None:
        """Iterating epoch `epoch` starts after this rank's first `batches` batches."""
        self.epoch, self._resume = epoch, (epoch, batches)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _permutation(self, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Positions into `pool`, in this epoch's order."""
        if self.order == "shuffle":
            return rng.permutation(len(pool))
        return shard_grouped(pool, self.shard_of[pool], rng)

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        if self.order == "shards":  # one contiguous run per rank: its own shards
            per = len(batches) // self.world_size
            mine = batches[self.rank * per:(self.rank + 1) * per]
        else:
            mine = batches[self.rank :: self.world_size]
        skip = self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0
        return mine[skip:]


def _batch_count(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Batches per epoch: all of the last, smaller one unless drop_last (but at least one), then
    padded to a multiple of the world size so every rank takes the same number of steps (DDP)."""
    count = n // batch_size if drop_last and n >= batch_size else math.ceil(n / batch_size)
    return math.ceil(count / world_size) * world_size


def labeled_rows(rows: int, ratio: int | None) -> int:
    """How many of a batch's `rows` are labeled: a PairedBatchSampler batch with this `ratio` holds
    ceil(rows / (ratio + 1)) (u unlabeled and ceil(u / ratio) labeled); ratio None: a labeled-only batch."""
    return rows if ratio is None else math.ceil(rows / (ratio + 1))


class PairedBatchSampler(_EpochSampler):
    """Yields [u_1..u_(mu B), l_1..l_B]: mu x B unlabeled (without replacement) + B labeled (with);
    an epoch's last batch, when smaller, keeps the ratio (ceil(u / mu) labeled).

    pairing 'redraw': the labeled partners are drawn afresh for every batch of every epoch;
    'fixed': each run of mu unlabeled images gets one labeled partner for the whole run, drawn once
    with the seed (the authors' RandomState(42).choice upsampling), and the pairs are shuffled per epoch.
    """

    def __init__(self, unlabeled: np.ndarray, labeled: np.ndarray, batch_size: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1, pairing: str = "redraw",
                 drop_last: bool = False, order: str = "shuffle", shard_of: np.ndarray | None = None,
                 ratio: int = 1):
        super().__init__(seed, rank, world_size, order, shard_of)
        if ratio < 1:
            raise ValueError(f"ratio: unlabeled images per labeled one must be >= 1, got {ratio}")
        if len(unlabeled) == 0 or len(labeled) == 0:
            raise ValueError("semi-supervised batches need both labeled and unlabeled images")
        if pairing not in ("redraw", "fixed"):
            raise ValueError(f"pairing: must be 'redraw' or 'fixed', got {pairing!r}")
        self.unlabeled, self.labeled, self.batch_size = np.asarray(unlabeled), np.asarray(labeled), batch_size
        self.pairing, self.drop_last, self.ratio = pairing, drop_last, ratio
        self.partner = np.random.RandomState(seed).choice(self.labeled, size=len(self.unlabeled), replace=True)

    def _batches(self) -> list[list[int]]:
        rng = self._rng()
        perm = self._permutation(self.unlabeled, rng)
        order, partners = self.unlabeled[perm], self.partner[perm]
        out, per = [], self.ratio * self.batch_size
        for b in range(_batch_count(len(order), per, self.world_size, self.drop_last)):
            sl = slice(b * per, (b + 1) * per)
            u, fixed = order[sl], partners[sl][:: self.ratio]
            if len(u) == 0:  # padding batch: reuse the start of the permutation
                u, fixed = order[:per], partners[:per][:: self.ratio]
            lab = fixed if self.pairing == "fixed" else rng.choice(self.labeled, size=len(fixed), replace=True)
            out.append([int(i) for i in u] + [int(i) for i in lab])
        return out

    def __iter__(self):
        return iter(self._shard(self._batches()))

    def __len__(self) -> int:
        return _batch_count(len(self.unlabeled), self.ratio * self.batch_size, self.world_size,
                            self.drop_last) // self.world_size


class LabeledBatchSampler(_EpochSampler):
    """Shuffled batches of the labeled pool, each image once per epoch."""

    def __init__(self, labeled: np.ndarray, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, order: str = "shuffle", shard_of: np.ndarray | None = None):
        super().__init__(seed, rank, world_size, order, shard_of)
        if len(labeled) == 0:
            raise ValueError("no labeled images to train on")
        self.labeled, self.batch_size, self.drop_last = np.asarray(labeled), batch_size, drop_last

    def _batches(self) -> list[list[int]]:
        order = self.labeled[self._permutation(self.labeled, self._rng())]
        n = _batch_count(len(order), self.batch_size, self.world_size, self.drop_last)
        batches = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(n)]
        return [[int(i) for i in (b if len(b) else order[: self.batch_size])] for b in batches]

    def __iter__(self):
        return iter(self._shard(self._batches()))

    def __len__(self) -> int:
        return _batch_count(len(self.labeled), self.batch_size, self.world_size, self.drop_last) // self.world_size
