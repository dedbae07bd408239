"""Which images a model has seen, kept compactly in its model file, and how many of an evaluation
subset it saw: the promotion gate refuses to score a model on images it trained on.

An image is named by the first 8 bytes of the BLAKE2b digest of its id: 8 bytes per image (4.7 MB
for BigEarthNet's 590k), loadable with `torch.load(weights_only=True)`; two ids sharing a hash by
chance would need about 2^32 images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def image_hashes(ids: Iterable[str]) -> np.ndarray:
    """(K,) uint64, sorted and unique: the images `ids` names."""
    digests = b"".join(hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids)
    return np.unique(np.frombuffer(digests, dtype=">u8").astype(np.uint64))


def count_seen(seen: np.ndarray, ids: Iterable[str]) -> int:
    """How many of `ids` are among the hashes `seen` (image_hashes of a model's training images)."""
    return int(np.isin(image_hashes(ids), np.asarray(seen, dtype=np.uint64), assume_unique=True).sum())
