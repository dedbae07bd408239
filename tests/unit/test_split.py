"""Split properties: disjoint, complete, stratified, label coverage at 1 %, deterministic,
duplicates kept together, predefined splits honoured."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sslmae.split import (
    SUBSETS,
    SplitError,
    iterative_stratification,
    make_split,
    read_split,
    split_dataset,
)


def random_labels(seed, n=2000, c=17):
    rng = np.random.default_rng(seed)
    prev = rng.uniform(0.01, 0.5, c)
    y = (rng.random((n, c)) < prev).astype(np.uint8)
    y[rng.integers(n), :] = 0
    return y


@pytest.mark.parametrize("seed", range(5))
def test_split_properties(seed):
    y = random_labels(seed)
    sub = make_split(y, fraction=0.01, val=0.1, test=0.2, seed=seed)
    assert set(sub) <= set(SUBSETS) and len(sub) == len(y)  # complete, one subset each
    train = np.isin(sub, ("labeled", "unlabeled"))
    lab = sub == "labeled"
    # every label that occurs in train occurs in the labeled subset
    assert (y[lab].sum(0) > 0)[y[train].sum(0) > 0].all()
    # roughly the asked fractions
    assert abs((sub == "test").mean() - 0.2) < 0.03 and abs((sub == "val").mean() - 0.1) < 0.03
    assert lab.sum() <= 0.01 * train.sum() + y.shape[1] + 1
    # stratified: label prevalence in test close to overall
    assert np.abs(y[sub == "test"].mean(0) - y.mean(0)).max() < 0.03
    # deterministic for a seed, different for another
    assert (make_split(y, 0.01, 0.1, 0.2, seed) == sub).all()
    assert (make_split(y, 0.01, 0.1, 0.2, seed + 100) != sub).any()


def test_iterative_stratification_balances_rare_labels():
    y = np.zeros((100, 3), dtype=np.uint8)
    y[:10, 0] = 1  # rare
    y[:, 1] = np.arange(100) % 2
    folds = iterative_stratification(y, [0.5, 0.5], np.random.default_rng(0))
    assert sorted(np.bincount(folds[:10])) == [5, 5]
    assert abs(np.bincount(folds)[0] - 50) <= 2


def test_duplicate_groups_never_straddle():
    y = random_labels(3, n=400, c=5)
    groups = np.arange(400)
    groups[1::2] = groups[0::2]  # pairs of identical images
    sub = make_split(y, 0.1, 0.1, 0.2, seed=0, groups=groups)
    side = np.where(np.isin(sub, ("labeled", "unlabeled")), "train", sub)
    for g in np.unique(groups):
        assert len(set(side[groups == g])) == 1


def test_predefined_split_is_honoured():
    y = random_labels(1, n=300, c=4)
    pre = np.array(["train"] * 200 + ["val"] * 30 + ["test"] * 70, dtype=object)
    sub = make_split(y, 0.05, 0.1, 0.2, seed=0, predefined=pre)
    assert (sub[200:230] == "val").all() and (sub[230:] == "test").all()
    assert set(sub[:200]) == {"labeled", "unlabeled"}
    with pytest.raises(SplitError, match="train/val/test"):
        make_split(y, 0.05, 0.1, 0.2, seed=0, predefined=np.array(["x"] * 300, dtype=object))


def test_fraction_one_labels_all_of_train():
    y = random_labels(2, n=100, c=3)
    sub = make_split(y, 1.0, 0.1, 0.2, seed=0)
    assert "unlabeled" not in set(sub)


def test_split_file_round_trip_and_errors(tmp_path, synth_dir):
    out = tmp_path / "s.csv"
    table = split_dataset(synth_dir, out, fraction=0.25, seed=3)
    again = split_dataset(synth_dir, tmp_path / "t.csv", fraction=0.25, seed=3)
    assert out.read_bytes() == (tmp_path / "t.csv").read_bytes()
    assert list(table.columns) == ["image", "subset"]
    ids = list(table["image"])
    assert (read_split(out, ids) == again["subset"].to_numpy()).all()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"image": ids, "subset": ["labeled"] * (len(ids) - 1) + ["holdout"]}).to_csv(bad, index=False)
    with pytest.raises(SplitError, match=r"bad.csv:\d+: subset of .* 'holdout'"):
        read_split(bad, ids)
    with pytest.raises(SplitError, match="does not match"):
        read_split(out, ids + ["ghost"])
    with pytest.raises(SplitError, match="not found"):
        read_split(tmp_path / "absent.csv", ids)


def test_identical_images_are_detected(tmp_path):
    (tmp_path / "images").mkdir()
    rows = ["image,a,b"]
    for i in range(40):
        color = (i % 20 * 10, 0, 0)  # image i and i+20 identical
        Image.new("RGB", (8, 8), color).save(tmp_path / "images" / f"im{i:02d}.png")
        rows.append(f"im{i:02d},{i % 2},{1 - i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    table = split_dataset(tmp_path, tmp_path / "s.csv", fraction=0.5, val=0.2, test=0.3, seed=0)
    side = table["subset"].replace({"labeled": "train", "unlabeled": "train"}).to_numpy()
    assert (side[:20] == side[20:]).all()


def test_earlier_sides_are_kept_when_new_data_arrives(tmp_path):
    from sslmae.datasets.synth import write_synthetic
    from sslmae.split import read_split

    old = write_synthetic(tmp_path / "old", n=80, size=16, seed=0)
    first = split_dataset(old, tmp_path / "s1.csv", fraction=0.3, seed=0)
    grown = write_synthetic(tmp_path / "grown", n=140, size=16, seed=0)  # the same 80 + 60 new scenes
    second = split_dataset(grown, tmp_path / "s2.csv", fraction=0.3, seed=5, keep_file=tmp_path / "s1.csv")
    side = {"labeled": "train", "unlabeled": "train", "val": "val", "test": "test"}
    before = dict(zip(first["image"], first["subset"].map(side)))
    after = dict(zip(second["image"], second["subset"].map(side)))
    assert all(after[i] == s for i, s in before.items())  # the test split stays frozen
    new_sides = [after[i] for i in after if i not in before]
    assert len(new_sides) == 60 and {"train", "test"} <= set(new_sides)
    assert set(read_split(tmp_path / "s2.csv", list(second["image"]))) == set(SUBSETS)


def test_step_factor_counts_batches_of_each_pool():
    import pandas as pd

    from sslmae.fractions import step_factor

    split = pd.DataFrame({"image": [f"i{k}" for k in range(120)],
                          "subset": ["labeled"] * 10 + ["unlabeled"] * 90 + ["val"] * 10 + ["test"] * 10})
    assert step_factor(split, 8) == 12 / 2  # ceil(90 / 8) semi steps per epoch, ceil(10 / 8) labeled-only
    assert step_factor(split, 128) == 1.0


def test_a_frozen_split_carries_the_table_forward_and_keeps_a_history(tmp_path):
    from sslmae.datasets.synth import write_synthetic
    from sslmae.split import history_file, split_dataset

    small = write_synthetic(tmp_path / "small", n=60, size=16, seed=0)
    out = tmp_path / "split.csv"
    first = split_dataset(small, out, fraction=0.3, seed=1, frozen=True, history=history_file(out))
    grown = write_synthetic(tmp_path / "grown", n=90, size=16, seed=0)  # the same 60 scenes and 30 more
    second = split_dataset(grown, out, fraction=0.3, seed=5, frozen=True, history=history_file(out))
    side = {"labeled": "train", "unlabeled": "train", "val": "val", "test": "test"}
    before = dict(zip(first["image"], first["subset"].map(side)))
    after = dict(zip(second["image"], second["subset"].map(side)))
    assert all(after[i] == s for i, s in before.items())  # no image changed side
    history = pd.read_csv(tmp_path / "split.history.csv")
    assert list(history.columns) == ["generation", "image", "subset"]
    assert set(history.loc[history["generation"] == 0, "image"]) == set(first["image"])
    assert set(history.loc[history["generation"] == 1, "image"]) == set(after) - set(before)
    # starting over is explicit: without frozen the seed decides afresh
    third = split_dataset(grown, out, fraction=0.3, seed=5, frozen=False)
    assert dict(zip(third["image"], third["subset"].map(side))) != after
