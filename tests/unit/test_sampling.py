"""Batch samplers: semi-supervised pairing (redrawn or fixed), labeled batches, drop_last, and
shards over DDP ranks that cover each image once."""


import numpy as np
import pytest

from sslmae.loading.sampling import LabeledBatchSampler, PairedBatchSampler


@pytest.mark.parametrize("world", [1, 2, 3])
def test_paired_sampler_shards_cover_each_unlabeled_image_once(world):
    unl, lab = np.arange(0, 45), np.arange(100, 110)
    shards = [list(PairedBatchSampler(unl, lab, 8, seed=1, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    seen = [i for s in shards for b in s for i in b[: len(b) // 2]]
    assert set(seen) == set(unl)
    n_real = -(-45 // 8)  # batches before padding
    assert len(seen) - 45 <= 8 * (len(shards[0]) * world - n_real)  # only padding repeats
    for s in shards:
        for b in s:
            assert all(i >= 100 for i in b[len(b) // 2:])  # the second half is labeled, with replacement
    lab_shards = [list(LabeledBatchSampler(lab, 3, seed=0, rank=r, world_size=world)) for r in range(world)]
    assert set(i for s in lab_shards for b in s for i in b) == set(lab)


def test_fixed_pairing_keeps_each_unlabeled_images_partner():
    unl, lab = np.arange(100, 140), np.arange(10)
    partners = []
    for epoch in (0, 1):
        s = PairedBatchSampler(unl, lab, 8, seed=42, pairing="fixed")
        s.set_epoch(epoch)
        pairs = {}
        for batch in s:
            half = len(batch) // 2
            pairs.update(zip(batch[:half], batch[half:]))
        partners.append(pairs)
    assert partners[0] == partners[1] and len(partners[0]) == 40
    redraw = [dict(zip(b[:len(b) // 2], b[len(b) // 2:])) for b in PairedBatchSampler(unl, lab, 8, seed=42)]
    assert {k: v for d in redraw for k, v in d.items()} != partners[0]


def test_drop_last_drops_the_smaller_batch():
    assert len(PairedBatchSampler(np.arange(20), np.arange(3), 8)) == 3
    assert len(PairedBatchSampler(np.arange(20), np.arange(3), 8, drop_last=True)) == 2
    assert all(len(b) == 16 for b in PairedBatchSampler(np.arange(20), np.arange(3), 8, drop_last=True))
    assert len(LabeledBatchSampler(np.arange(20), 8, drop_last=True)) == 2
    assert len(LabeledBatchSampler(np.arange(5), 8, drop_last=True)) == 1  # never zero batches


@pytest.mark.parametrize("pairing", ["redraw", "fixed"])
def test_mu_unlabeled_per_labeled_and_the_pool_once_an_epoch(pairing):
    """train.unlabeled_ratio = mu: each step takes mu x B pool images (each once an epoch) and B labeled
    ones (cycling); the last, smaller batch keeps the ratio; mu 1 is the authors' batch."""
    unl, lab = np.arange(100, 1100), np.arange(10)
    s = PairedBatchSampler(unl, lab, 8, seed=3, pairing=pairing, ratio=7)
    batches = list(s)
    assert len(batches) == len(s) == 18  # ceil(1000 / 56)
    pool = [i for b in batches for i in b if i >= 100]
    assert sorted(pool) == list(unl)  # without replacement
    assert all(sum(i < 100 for i in b) == 8 and len(b) == 64 for b in batches[:-1])
    assert sum(i < 100 for i in batches[-1]) == 7 and len(batches[-1]) == 48 + 7  # 1000 - 17 * 56 = 48 -> ceil(48 / 7)
    same = PairedBatchSampler(unl, lab, 8, seed=3, pairing=pairing)
    assert list(same) == list(PairedBatchSampler(unl, lab, 8, seed=3, pairing=pairing, ratio=1))
