"""Decoded-image cache (sslmae.loading.cache): built once, reused, rebuilt on change, atomic,
the same pixels as decoding (training with it: tests/integration/test_cache_training.py)."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sslmae.config import load_config
from sslmae.datasets.load import load_dataset
from sslmae.loading import cache as cache_mod
from sslmae.loading import pixels as images  # where the one RGB decoding rule lives
from sslmae.loading.cache import cache_file, open_cache
from sslmae.loading.images import ImageTableDataset, load_image
from sslmae.loading.loaders import eval_loader, loader_options, subset_dataset
from sslmae.split import read_split

SIZE = 32  # tiny_overrides' data.img_size


@pytest.fixture
def data(odd_sizes_dir):
    return load_dataset(odd_sizes_dir[0])


def _npy_files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_pixels_identical_to_load_image(tmp_path, data):
    native = {Image.open(p).size for p in data.paths}
    assert native - {(SIZE, SIZE)}, "the fixture must hold images that need resizing"
    arr = open_cache(tmp_path / "c", data.paths, SIZE, root=data.root)
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    assert arr.shape == (len(data.paths), SIZE, SIZE, 3) and arr.dtype == np.uint8
    for i, p in enumerate(data.paths):
        assert torch.equal(torch.from_numpy(np.array(arr[i])).permute(2, 0, 1), load_image(p, SIZE)), p


def test_built_once_then_reused_without_decoding(tmp_path, data, decodes):
    folder = tmp_path / "c"
    first = open_cache(folder, data.paths, SIZE, root=data.root)
    assert decodes["n"] == len(data.paths)
    (name,) = _npy_files(folder)  # one file, no temporary left
    path = folder / name
    assert path == cache_file(folder, data.paths, SIZE, root=data.root) and name.endswith(".npy")
    stamp = path.stat().st_mtime_ns
    second = open_cache(folder, data.paths, SIZE, root=data.root)
    assert decodes["n"] == len(data.paths)  # nothing decoded the second time
    assert path.stat().st_mtime_ns == stamp and _npy_files(folder) == [name]
    assert np.array_equal(first, second)
    # another size is another cache
    open_cache(folder, data.paths, 16, root=data.root)
    assert decodes["n"] == 2 * len(data.paths) and len(_npy_files(folder)) == 2


def test_key_is_relative_to_the_dataset_root(tmp_path, odd_sizes_dir):
    src = odd_sizes_dir[0]
    copy = tmp_path / "moved"
    shutil.copytree(src, copy)  # copy2: same sizes and mtimes
    a, b = load_dataset(src), load_dataset(copy)
    assert cache_file(tmp_path, a.paths, SIZE, a.root) == cache_file(tmp_path, b.paths, SIZE, b.root)
    # order matters: rows follow the paths
    assert cache_file(tmp_path, a.paths[::-1], SIZE, a.root) != cache_file(tmp_path, a.paths, SIZE, a.root)


def test_rebuilt_when_a_file_changes(tmp_path, odd_sizes_dir, decodes):
    root = tmp_path / "ds"
    shutil.copytree(odd_sizes_dir[0], root)
    data = load_dataset(root)
    folder = tmp_path / "c"
    before = np.array(open_cache(folder, data.paths, SIZE, root=data.root))
    old_name = cache_file(folder, data.paths, SIZE, root=data.root).name
    target = data.paths[7]
    st = target.stat()
    Image.fromarray(255 - np.asarray(Image.open(target).convert("RGB"))).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a coarse clock must not hide it
    decodes["n"] = 0
    after = open_cache(folder, data.paths, SIZE, root=data.root)
    assert decodes["n"] == len(data.paths)  # rebuilt
    assert cache_file(folder, data.paths, SIZE, root=data.root).name != old_name
    assert torch.equal(torch.from_numpy(np.array(after[7])).permute(2, 0, 1), load_image(target, SIZE))
    assert not np.array_equal(after[7], before[7])
    others = [i for i in range(len(data.paths)) if i != 7]
    assert np.array_equal(after[others], before[others])


@pytest.mark.parametrize("workers", [1, 4])
def test_interrupted_build_leaves_nothing(tmp_path, data, monkeypatch, workers):
    real, calls = images.decode_rgb, {"n": 0}

    def failing(path, size):
        calls["n"] += 1
        if calls["n"] == len(data.paths) // 2:
            raise KeyboardInterrupt("killed mid-build")
        return real(path, size)

    monkeypatch.setattr(images, "decode_rgb", failing)
    folder = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        open_cache(folder, data.paths, SIZE, root=data.root, workers=workers)
    assert _npy_files(folder) == []  # neither the cache nor its temporary file
    monkeypatch.setattr(images, "decode_rgb", real)
    arr = open_cache(folder, data.paths, SIZE, root=data.root, workers=workers)
    assert torch.equal(torch.from_numpy(np.array(arr[-1])).permute(2, 0, 1), load_image(data.paths[-1], SIZE))
    assert len(_npy_files(folder)) == 1


def test_a_damaged_cache_file_is_rebuilt(tmp_path, data, decodes):
    folder = tmp_path / "c"
    path = cache_file(folder, data.paths, SIZE, root=data.root)
    folder.mkdir()
    np.save(path, np.zeros((3, SIZE, SIZE, 3), np.uint8))  # wrong shape under the right name
    arr = open_cache(folder, data.paths, SIZE, root=data.root)
    assert arr.shape[0] == len(data.paths) and decodes["n"] == len(data.paths)
    assert cache_mod._open(path, arr.shape) is not None


def test_dataset_items_identical_with_and_without_cache(tmp_path, data, odd_sizes_dir):
    subsets = read_split(odd_sizes_dir[1], data.ids)
    arr = open_cache(tmp_path / "c", data.paths, SIZE, root=data.root)
    for names in (("test",), ("labeled", "unlabeled"), ("labeled", "unlabeled", "val", "test")):
        plain = subset_dataset(data, subsets, names, SIZE)
        cached = subset_dataset(data, subsets, names, SIZE, cache=arr)
        assert len(plain) == len(cached) > 0
        for i in range(len(plain)):
            (a, ya, la), (b, yb, lb) = plain[i], cached[i]
            assert a.shape == b.shape == (3, SIZE, SIZE) and b.dtype == torch.uint8
            assert torch.equal(a, b) and torch.equal(ya, yb) and torch.equal(la, lb)
        # collated batches: same values and the same (contiguous) layout
        for (xa, ya, la), (xb, yb, lb) in zip(eval_loader(plain, 7, 0), eval_loader(cached, 7, 0)):
            assert torch.equal(xa, xb) and xa.stride() == xb.stride() and xb.is_contiguous()
            assert torch.equal(ya, yb) and torch.equal(la, lb)


def test_cached_dataset_pickles_as_a_file_name_and_feeds_workers(tmp_path, data, odd_sizes_dir):
    subsets = read_split(odd_sizes_dir[1], data.ids)
    arr = open_cache(tmp_path / "c", data.paths, SIZE, root=data.root)
    ds = subset_dataset(data, subsets, ("labeled", "unlabeled", "val", "test"), SIZE, cache=arr)
    blob = pickle.dumps(ds)
    assert len(blob) < arr.nbytes / 4  # the pixels are not in it (spawned workers map the file)
    back = pickle.loads(blob)
    assert isinstance(back.cache, np.memmap) and not back.cache.flags.writeable
    assert all(torch.equal(back[i][0], ds[i][0]) for i in range(len(ds)))
    # real worker processes (the platform's default start method)
    plain = subset_dataset(data, subsets, ("labeled", "unlabeled", "val", "test"), SIZE)
    xs = torch.cat([x for x, _, _ in DataLoader(ds, batch_size=10, num_workers=2)])
    assert torch.equal(xs, torch.stack([plain[i][0] for i in range(len(plain))]))


def test_dataset_rejects_a_mismatched_cache(data):
    arr = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    labels, lab = data.labels[:2], np.ones(2, bool)
    with pytest.raises(ValueError, match="rows"):
        ImageTableDataset(data.paths[:2], labels, lab, SIZE, cache=arr)
    with pytest.raises(ValueError, match="rows"):
        ImageTableDataset(data.paths[:2], labels, lab, SIZE, cache=arr, rows=[0, 4])
    with pytest.raises(ValueError, match="cache"):
        ImageTableDataset(data.paths[:2], labels, lab, 16, cache=arr, rows=[0, 1])


def test_loader_options():
    none, three = loader_options(0), loader_options(3)
    assert {k: none[k] for k in ("num_workers", "persistent_workers", "pin_memory")} == {
        "num_workers": 0, "persistent_workers": False, "pin_memory": False}
    assert {k: three[k] for k in ("num_workers", "persistent_workers", "pin_memory")} == {
        "num_workers": 3, "persistent_workers": True, "pin_memory": torch.cuda.is_available()}
    # each loader seeds its workers from a generator of its own, not the global RNG
    state = torch.get_rng_state()
    assert none["generator"] is not three["generator"]
    assert torch.equal(none["generator"].get_state(), three["generator"].get_state())
    torch.randint(0, 10, (1,), generator=none["generator"])
    assert torch.equal(torch.get_rng_state(), state)


def test_config_keys(tmp_path):
    cfg = load_config(None, [])
    assert cfg.data.cache is True and cfg.data.cache_dir == "data/cache"
    with pytest.raises(ValueError, match="data.cache_dir"):
        load_config(None, ["data.cache_dir=''"])
    with pytest.raises(ValueError, match="data.cache"):
        load_config(None, ["data.cache=maybe"])








def test_other_caches_go_unless_a_process_holds_them(tmp_path):
    import fcntl

    for name in ("a", "b", "c"):
        np.save(tmp_path / f"{name}.npy", np.zeros((2, 4, 4, 3), np.uint8))
    held = os.open(tmp_path / "b.npy", os.O_RDONLY)  # another open file: another user of the cache
    fcntl.flock(held, fcntl.LOCK_SH)
    try:
        removed = cache_mod.prune(tmp_path, keep=tmp_path / "c.npy")
    finally:
        os.close(held)
    assert [p.name for p, _ in removed] == ["a.npy"]
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["b.npy", "c.npy"]
