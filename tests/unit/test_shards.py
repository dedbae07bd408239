"""The shard format and the streaming plan: shards hold the bytes the manifest says where, in
WebDataset's layout; the epoch plan reads each shard once, gives every rank its own shards and
every image once, and resumes at a batch; the shard cache stays within its bound."""

from __future__ import annotations

import hashlib
import itertools
import json
import tarfile

import numpy as np
import pytest

from sslmae.datasets.records import ShardIndex
from sslmae.datasets.shards import ShardSink, member_json, read_member
from sslmae.loading.loaders import ResumableLoader
from sslmae.loading.sampling import LabeledBatchSampler, PairedBatchSampler, shard_grouped
from sslmae.loading.shard_reader import ShardCache, ShardReader


def write_shards(folder, sizes, max_bytes=3000):
    """Samples of random bytes of the given sizes; their manifest rows as the sink completes them."""
    rows = []
    sink = ShardSink(folder, max_bytes, lambda path, done: rows.extend(done))
    rng = np.random.default_rng(0)
    blobs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    for i, blob in enumerate(blobs):
        row = {"image": f"img.{i}", "sha256": hashlib.sha256(blob).hexdigest()}
        sink.add(row, i, "png" if i % 2 else "jpg", blob, member_json(f"img.{i}", ["a"]))
    sink.close_shard()
    return rows, blobs


def test_the_manifest_says_where_each_images_bytes_lie(tmp_path):
    rows, blobs = write_shards(tmp_path, [700, 1, 512, 513, 2000, 90, 4000, 33])
    assert [r["image"] for r in rows] == [f"img.{i}" for i in range(8)]
    for row, blob in zip(rows, blobs):
        assert read_member(tmp_path / row["path"], row["offset"], row["size"]) == blob
    shards = sorted((tmp_path / "shards").glob("*.tar"))
    assert len(shards) > 2 and not list((tmp_path / "shards").glob(".*"))  # no temporary left
    # WebDataset's layout: <key>.<ext> members a tar reader groups by key, no dots in keys
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        assert names[:2] == ["000000000.jpg", "000000000.json"]
        assert json.loads(tar.extractfile("000000000.json").read()) == {"image": "img.0", "labels": ["a"]}


def test_shards_are_the_same_bytes_every_time(tmp_path):
    write_shards(tmp_path / "a", [100, 2000, 3000])
    write_shards(tmp_path / "b", [100, 2000, 3000])
    for a in sorted((tmp_path / "a" / "shards").iterdir()):
        assert a.read_bytes() == (tmp_path / "b" / "shards" / a.name).read_bytes()


def test_an_aborted_shard_leaves_nothing(tmp_path):
    closed = []
    sink = ShardSink(tmp_path, 10**9, lambda path, rows: closed.append(path))
    sink.add({"image": "x"}, 0, "png", b"data", b"{}")
    sink.abort()
    assert closed == [] and list((tmp_path / "shards").iterdir()) == []


def test_a_torn_shard_is_named():
    with pytest.raises(OSError, match="truncated shard"):
        read_member(__file__, 10**9, 10)


# ---------------------------------------------------------------- the epoch plan

def test_shard_grouped_order_keeps_each_shard_together_and_covers_the_pool():
    shard_of = np.repeat(np.arange(7), [5, 1, 9, 3, 4, 2, 8])
    pool = np.arange(len(shard_of))
    order = shard_grouped(pool, shard_of, np.random.default_rng(3))
    assert sorted(order) == list(pool)
    runs = [k for k, _ in itertools.groupby(shard_of[order])]
    assert len(runs) == 7  # each shard one contiguous run
    assert not np.array_equal(order, shard_grouped(pool, shard_of, np.random.default_rng(4)))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_streamed_epochs_give_each_rank_its_own_shards_and_every_image_once(world):
    unl, lab = np.arange(0, 240), np.arange(240, 260)
    shard_of = np.arange(260) // 20  # 12 unlabeled shards + one labeled
    ranks = [PairedBatchSampler(unl, lab, 8, seed=1, rank=r, world_size=world, order="shards", shard_of=shard_of)
             for r in range(world)]
    batches = [list(s) for s in ranks]
    assert len({len(b) for b in batches}) == 1 and len(batches[0]) == len(ranks[0])
    seen = [i for b in batches for batch in b for i in batch[: len(batch) // 2]]
    assert sorted(seen) == list(unl)  # 240 = 30 batches of 8: no padding needed
    shards = [{int(shard_of[i]) for batch in b for i in batch[: len(batch) // 2]} for b in batches]
    assert sum(len(s) for s in shards) <= 12 + world - 1  # a shard is split between ranks at most at a boundary
    assert all(i >= 240 for b in batches for batch in b for i in batch[len(batch) // 2:])


@pytest.mark.parametrize("order", ["shuffle", "shards"])
def test_a_resumed_epoch_continues_with_the_batches_it_would_have_given(order):
    shard_of = np.arange(100) // 10 if order == "shards" else None
    kw = dict(seed=5, order=order, shard_of=shard_of)
    whole = PairedBatchSampler(np.arange(80), np.arange(80, 100), 8, **kw)
    whole.set_epoch(3)
    expected = list(whole)
    resumed = PairedBatchSampler(np.arange(80), np.arange(80, 100), 8, **kw)
    resumed.resume_at(3, 4)
    resumed.set_epoch(3)
    assert list(resumed) == expected[4:] and list(resumed) == expected[4:]  # any number of iterations
    resumed.set_epoch(4)  # the next epoch starts at its beginning
    whole.set_epoch(4)
    assert list(resumed) == list(whole)
    labeled = LabeledBatchSampler(np.arange(30), 4, **{**kw, "shard_of": np.arange(30) // 3 if shard_of is not None
                                                       else None})
    labeled.resume_at(0, 2)
    assert len(list(labeled)) == len(labeled) - 2


def test_the_loader_saves_the_next_epoch_once_an_epoch_is_done():
    sampler = PairedBatchSampler(np.arange(40), np.arange(40, 44), 8, seed=0)
    loader = ResumableLoader(list(range(44)), batch_sampler=sampler)
    sampler.set_epoch(2)
    loader.consumed = 3
    assert loader.position() == {"epoch": 2, "consumed": 3}
    loader.consumed = len(sampler)
    assert loader.position() == {"epoch": 3, "consumed": 0}
    other = ResumableLoader(list(range(44)), batch_sampler=PairedBatchSampler(np.arange(40), np.arange(40, 44), 8))
    other.resume({"epoch": 2, "consumed": 3})
    assert other.batch_sampler.epoch == 2 and len(list(other.batch_sampler)) == len(sampler) - 3


# ---------------------------------------------------------------- the shard cache

def test_the_shard_cache_fetches_once_evicts_the_least_recent_and_stays_within_its_bound(tmp_path):
    fetched = []

    def fetch(name, dest):
        fetched.append(name)
        dest.write_bytes(b"x" * 1000)

    cache = ShardCache(tmp_path / "cache", 2500, fetch)
    for name in ("a", "b", "a", "c", "a", "b"):
        cache.path(name)
        assert cache.used() <= 2500
    assert fetched == ["a", "b", "c", "b"]  # c pushed out b, the least recently used


def test_a_remote_reader_reads_ranges_and_whole_shards_through_its_cache(tmp_path, monkeypatch):
    """The reader's remote paths, with a local folder standing in for the store's transport."""
    rows, blobs = write_shards(tmp_path / "ds", [800, 900, 700, 600, 1000, 500])
    names = sorted({r["path"] for r in rows})
    index = ShardIndex(root="s3://bucket/ds", names=names, shard=np.asarray([names.index(r["path"]) for r in rows]),
                       offset=np.asarray([r["offset"] for r in rows]), size=np.asarray([r["size"] for r in rows]))
    shard_bytes = max((tmp_path / "ds" / n).stat().st_size for n in names)
    reader = ShardReader(index, tmp_path / "cache", max_bytes=int(shard_bytes * 2.5))

    class LocalStore:
        def get(self, rel, dest):
            dest.write_bytes((tmp_path / "ds" / rel).read_bytes())
            return True

        def read_range(self, rel, offset, size):
            return read_member(tmp_path / "ds" / rel, offset, size)

    monkeypatch.setattr(ShardReader, "store", lambda self: LocalStore())
    assert [reader.image(i) for i in range(6)] == blobs
    assert reader.cache().used() <= shard_bytes * 2.5 < shard_bytes * len(names)
    with pytest.raises(ValueError, match="cannot hold shard"):
        ShardReader(index, tmp_path / "small", max_bytes=shard_bytes - 1).image(0)
    pack = reader.pack(np.array([4, 1]))
    assert 4 in pack and 3 not in pack and pack.image(1) == blobs[1] and pack.image(4) == blobs[4]
    assert pack.path.stat().st_size == len(blobs[4]) + len(blobs[1])
    assert reader.pack(np.array([4, 1])).path == pack.path  # fetched once
    assert ShardReader.__getstate__(reader)["_store"] is None  # workers build their own client
