"""Training with the decoded-image cache: bit-identical to decoding every epoch, and every loader
of the data module reads the one memory map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image

from sslmae.config import load_config
from sslmae.datasets.load import load_dataset
from sslmae.split import read_split
from sslmae.train.datamodule import SSLDataModule
from tests.conftest import tiny_overrides
from tests.unit.test_cache import SIZE, _npy_files


def _train(tmp_path, odd_sizes_dir, name: str, extra: list[str]):
    from sslmae.train.run import train

    root, split = odd_sizes_dir
    cfg = load_config(None, tiny_overrides(tmp_path / name, root, split) + extra)
    result = train(cfg)
    state = torch.load(result.last_checkpoint, weights_only=True)["state_dict"]
    best = torch.load(result.checkpoint, weights_only=True)
    return state, best, pd.read_csv(result.history)


def test_training_bit_identical_with_and_without_cache(tmp_path, odd_sizes_dir, decodes):
    folder = tmp_path / "cache"
    data = load_dataset(odd_sizes_dir[0])
    n_images = len(data.paths)
    train_rows = np.flatnonzero(np.isin(read_split(odd_sizes_dir[1], data.ids), ("labeled", "unlabeled")))
    assert any(Image.open(data.paths[i]).size != (SIZE, SIZE) for i in train_rows)  # resizing is exercised
    s0, b0, h0 = _train(tmp_path, odd_sizes_dir, "plain", ["data.cache=false", f"data.cache_dir={folder}"])
    assert not folder.exists()  # cache off: nothing written
    assert decodes["n"] > n_images  # decoded again in every epoch
    decodes["n"] = 0
    s1, b1, h1 = _train(tmp_path, odd_sizes_dir, "cached", ["data.cache=true", f"data.cache_dir={folder}"])
    assert decodes["n"] == n_images  # the build; no epoch decoded anything
    assert len(_npy_files(folder)) == 1
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    for k in b0["state_dict"]:
        assert torch.equal(b0["state_dict"][k], b1["state_dict"][k]), k
    assert b0["meta"]["thresholds"] == b1["meta"]["thresholds"]
    drop = [c for c in h0.columns if "time" in c or "seconds" in c]
    pd.testing.assert_frame_equal(h0.drop(columns=drop), h1.drop(columns=drop), check_exact=True)


def test_datamodule_uses_the_cache(tmp_path, odd_sizes_dir, decodes):
    root, split = odd_sizes_dir
    cfg = load_config(None, tiny_overrides(tmp_path, root, split) + [f"data.cache_dir={tmp_path / 'c'}"])
    dm = SSLDataModule(cfg.data, cfg.train.batch_size, True, cfg.seed, cfg.evaluate.batch_size)
    loader = dm.train_dataloader()
    assert isinstance(loader.dataset.cache, np.memmap)
    val = dm.val_dataloader()
    assert val.dataset.cache is loader.dataset.cache  # one map for every loader
    n = decodes["n"]
    for _ in loader:
        pass
    for _ in val:
        pass
    assert decodes["n"] == n  # iterating decodes nothing
