"""The unlabeled pool at ingest (sslmae.datasets.pool): unlabeled sources beside the labeled one, the
rule on decoded-pixel digests (a copy of a labeled image counts once, as labeled), and bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sslmae.datasets.ingest import ingest
from sslmae.datasets.load import load_dataset
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.sources import SourceError
from tests.support.datasets import labels_csv_dataset, quiet, rgb, save


def _pool(root, n=5, first=100, prefix="u"):
    """n new images (ids <prefix><i>), one in a nested folder, as a user's archive holds them."""
    for i in range(n):
        save(root / ("sub" if i == 0 else "") / f"{prefix}{i}.png", seed=first + i)
    return root


def test_a_pool_is_ingested_beside_the_labeled_source_and_copies_of_labeled_images_count_once(tmp_path):
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    pool = _pool(tmp_path / "pool")
    # the pixels of labeled im2 again, in another container and under another name; im3 byte for byte
    Image.fromarray(rgb(2)).save(pool / "copy_of_im2.tif")
    (pool / "im3.png").write_bytes((labeled / "images" / "im3.png").read_bytes())
    second = _pool(tmp_path / "pool2", n=2, first=200, prefix="v")
    res = ingest(str(labeled), tmp_path / "out", unlabeled=[str(pool), str(second)], log=quiet)
    table = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pandas()
    assert list(table.columns)[-2:] == ["labeled", "origin"]
    pool_rows = table[~table["labeled"]]
    assert sorted(pool_rows["image"]) == ["u0", "u1", "u2", "u3", "u4", "v0", "v1"]
    assert pool_rows.loc[pool_rows["image"] == "u0", "source"].item() == "sub/u0.png"
    assert dict(pool_rows["origin"].value_counts()) == {"unlabeled/0": 5, "unlabeled/1": 2}
    assert all(sum(v) == 0 for v in pool_rows["labels"]) and all(len(v) == 0 for v in pool_rows["label_names"])
    assert set(table.loc[table["labeled"], "origin"]) == {"source"} and table["labeled"].sum() == 6
    report = res.report["pool"]
    assert report["n_images"] == 7 and report["by_origin"] == {"unlabeled/0": 5, "unlabeled/1": 2}
    assert sorted((d["image"], d["labeled"]) for d in report["same_as_labeled"]) == [("copy_of_im2", "im2"),
                                                                                      ("im3", "im3")]
    assert res.n_images == 13 and res.report["label_counts"] == ingest(
        str(labeled), tmp_path / "alone", log=quiet).report["label_counts"]
    data = load_dataset(tmp_path / "out")
    assert data.known is not None and data.known.sum() == 6 and len(data) == 13
    assert not data.labels[~data.known].any()


def test_without_a_pool_the_manifest_is_what_it_was(tmp_path):
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    ingest(str(labeled), tmp_path / "out", log=quiet)
    assert "labeled" not in pq.read_schema(tmp_path / "out" / "manifest.parquet").names
    assert load_dataset(tmp_path / "out").known is None


def test_a_pool_in_shards_says_its_labels_are_unknown(tmp_path):
    import tarfile

    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    ingest(str(labeled), tmp_path / "out", unlabeled=[str(_pool(tmp_path / "pool", n=3))], format="shards",
           shard_bytes=65536, log=quiet)
    members = {}
    for shard in sorted((tmp_path / "out" / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    got = json.loads(tar.extractfile(m).read())
                    members[got["image"]] = got["labels"]
    assert members["u0"] is None and isinstance(members["im0"], list)
    data = load_dataset(tmp_path / "out")
    assert data.shards is not None and int((~data.known).sum()) == 3


def test_a_pool_id_naming_a_labeled_image_with_other_pixels_is_refused(tmp_path):
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    pool = _pool(tmp_path / "pool", n=2)
    save(pool / "im1.png", seed=999)
    with pytest.raises(DatasetError, match=r"im1\.png: image id 'im1' is also a labeled image, with other pixels"):
        ingest(str(labeled), tmp_path / "out", unlabeled=[str(pool)], log=quiet)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "twice"])
def test_bad_unlabeled_sources_are_one_line_naming_the_source(tmp_path, case):
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    pool = tmp_path / "pool"
    if case == "missing":
        expected, error = f"{pool}: no such folder", SourceError
    elif case == "empty":
        pool.mkdir()
        (pool / "notes.txt").write_text("no images here")
        expected, error = "unlabeled source (data.unlabeled[0]) holds no image", DatasetError
    elif case == "unreadable":
        _pool(pool, n=2)
        (pool / "broken.png").write_bytes(b"not a png")
        expected, error = "broken.png", DatasetError
    else:
        _pool(pool, n=2)
        other = _pool(tmp_path / "pool2", n=1, first=300)  # u0 again, other pixels
        expected, error = "image id 'u0' is already in the pool with other pixels", DatasetError
    sources = [str(pool)] + ([str(tmp_path / "pool2")] if case == "twice" else [])
    with pytest.raises(error) as raised:
        ingest(str(labeled), tmp_path / "out", unlabeled=sources, log=quiet)
    assert expected in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_the_same_pool_image_in_two_sources_is_one_image(tmp_path):
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    a, b = _pool(tmp_path / "a", n=2), _pool(tmp_path / "b", n=2)  # the same two images
    res = ingest(str(labeled), tmp_path / "out", unlabeled=[str(a), str(b)], log=quiet)
    assert res.report["pool"]["n_images"] == 2
    assert [d["image"] for d in res.report["pool"]["repeated"]] == ["u0", "u1"]


def _table_dataset(root, rows):
    """A manifest.csv (image, labels) over fresh images; rows: (id, labels cell)."""
    lines = ["image,labels"]
    for i, (image, cell) in enumerate(rows):
        save(root / f"{image}.png", seed=50 + i)
        lines.append(f"{image}.png,{cell}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_table_row_without_labels_is_an_error_unless_the_user_says_pool(tmp_path):
    src = _table_dataset(tmp_path / "src", [("a", "x|y"), ("b", "y"), ("c", ""), ("d", "x")])
    with pytest.raises(DatasetError, match=r"manifest\.csv:4: missing labels for 'c\.png'"):
        ingest(str(src), tmp_path / "out", log=quiet)
    res = ingest(str(src), tmp_path / "out", unlabeled_rows="pool", log=quiet)
    data = load_dataset(tmp_path / "out")
    assert dict(zip(data.ids, data.known)) == {"a": True, "b": True, "d": True, "c": False}
    assert res.report["pool"]["by_origin"] == {"source": 1} and res.report["label_counts"] == {"x": 2, "y": 2}
    # an ingested dataset with a pool, ingested again, is the same dataset
    again = ingest(str(tmp_path / "out"), tmp_path / "again", log=quiet)
    a = pq.read_table(tmp_path / "out" / "manifest.parquet").drop(["source"])
    b = pq.read_table(tmp_path / "again" / "manifest.parquet").drop(["source"])
    assert a.equals(b) and again.report["pool"]["n_images"] == 1


def test_pool_rows_said_but_absent_are_a_note(tmp_path):
    src = _table_dataset(tmp_path / "src", [("a", "x|y"), ("b", "y")])
    said = []
    res = ingest(str(src), tmp_path / "out", unlabeled_rows="pool", log=said.append)
    assert any("no row" in line and "lacks labels" in line for line in said)
    assert [w["kind"] for w in res.report["warnings"]] == ["no_unlabeled_rows"] and "pool" not in res.report


def test_make_split_puts_the_pool_in_unlabeled_only():
    from sslmae.split import make_split

    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.uint8)
    known = np.ones(60, dtype=bool)
    known[40:] = False
    y[40:] = 0
    subsets = make_split(y, None, 0.2, 0.2, seed=1, known=known)
    assert set(subsets[40:]) == {"unlabeled"}
    assert set(subsets[:40]) == {"labeled", "val", "test"}  # null fraction with a pool: every train image labeled
    half = make_split(y, 0.5, 0.2, 0.2, seed=1, known=known)
    assert set(half[40:]) == {"unlabeled"} and "unlabeled" in set(half[:40])  # the paper's hiding, on top
    assert (half[:40] == "labeled").sum() < (subsets[:40] == "labeled").sum()
    # without a pool, null is the paper's protocol: today's split
    assert list(make_split(y[:40], None, 0.2, 0.2, seed=1)) == list(make_split(y[:40], 0.1, 0.2, 0.2, seed=1))


def test_a_frozen_split_carries_the_pool_forward_and_a_pool_image_that_gains_labels_joins_labeled(tmp_path):
    """Retraining: new pool images join unlabeled; a pool image given labels moves to labeled (never to
    val or test) and the history says when; a val/test image whose labels are gone is refused."""
    import pandas as pd

    from sslmae.split import SplitError, split_dataset

    labeled = labels_csv_dataset(tmp_path / "lab", n=24)
    pool = _pool(tmp_path / "pool", n=6)
    ingest(str(labeled), tmp_path / "ds", unlabeled=[str(pool)], log=quiet)
    out, history = tmp_path / "split.csv", tmp_path / "split.history.csv"
    first = split_dataset(tmp_path / "ds", out, val=0.2, test=0.2, seed=0, frozen=True, history=history)
    assert set(first.loc[first["image"].str.startswith("u"), "subset"]) == {"unlabeled"}
    # u0 gains labels (its file stays in the archive too: the same pixels, counted once, as labeled); u6 arrives
    (labeled / "labels.csv").write_text((labeled / "labels.csv").read_text() + "u0,1,0,1\n")
    (labeled / "images" / "u0.png").write_bytes(next(pool.rglob("u0.png")).read_bytes())
    save(pool / "u6.png", seed=106)
    ingest(str(labeled), tmp_path / "ds", unlabeled=[str(pool)], log=quiet)
    second = split_dataset(tmp_path / "ds", out, val=0.2, test=0.2, seed=0, frozen=True, history=history)
    subset = dict(second.itertuples(index=False))
    assert subset["u0"] == "labeled" and subset["u6"] == "unlabeled"
    assert all(dict(first.itertuples(index=False))[i] == subset[i] for i in first["image"] if i != "u0")
    gen1 = pd.read_csv(history).query("generation == 1")
    assert sorted(gen1["image"]) == ["u0", "u6"]
    # a test image that lost its labels (now only in the archive) is refused, naming it
    test_image = second.loc[second["subset"] == "test", "image"].iloc[0]
    rows = [r for r in (labeled / "labels.csv").read_text().splitlines() if not r.startswith(f"{test_image},")]
    (labeled / "labels.csv").write_text("\n".join(rows) + "\n")
    (labeled / "images" / f"{test_image}.png").rename(pool / f"{test_image}.png")
    ingest(str(labeled), tmp_path / "ds", unlabeled=[str(pool)], log=quiet)
    with pytest.raises(SplitError, match=f"val/test image.*have no labels now.*'{test_image}'"):
        split_dataset(tmp_path / "ds", out, val=0.2, test=0.2, seed=0, frozen=True, history=history)


def test_the_embedded_pool_left_in_params_for_another_source_is_refused(tmp_path):
    """data/synth/unlabeled belongs to data/synth: with data.source changed to a user's dataset, it is
    refused in one line rather than mixed into that dataset's pool."""
    from sslmae.datasets.synth import POOL, write_synthetic

    synth = write_synthetic(tmp_path / "synth", n=4, size=16, unlabeled=2)
    assert sorted(p.name for p in (synth / POOL).iterdir()) == ["pool0000.png", "pool0001.png"]
    mine = labels_csv_dataset(tmp_path / "mine", n=6)
    with pytest.raises(DatasetError, match=r"lies in .*synth, another labeled dataset than the source"):
        ingest(str(mine), tmp_path / "out", unlabeled=[str(synth / POOL)], log=quiet)
    res = ingest(str(synth), tmp_path / "out", unlabeled=[str(synth / POOL)], log=quiet)  # its own source: used
    assert res.report["pool"]["n_images"] == 2 and res.n_images == 6


@pytest.mark.slow
def test_training_takes_mu_pool_images_a_step_and_the_run_records_the_pool(tmp_path, capfd):
    import mlflow
    import pandas as pd

    from sslmae.cli.main import main
    from sslmae.datasets.synth import POOL, write_synthetic
    from sslmae.split import split_dataset
    from tests.conftest import tiny_overrides

    synth = write_synthetic(tmp_path / "synth", n=48, size=32, unlabeled=30)
    ingest(str(synth), tmp_path / "ds", unlabeled=[str(synth / POOL)], log=quiet)
    split_dataset(tmp_path / "ds", tmp_path / "split.csv", seed=0)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*tiny_overrides(tmp_path, tmp_path / "ds", tmp_path / "split.csv"), "train.unlabeled_ratio=2",
            "train.epochs=1", "tracking.enabled=true", f"tracking.uri={store}"]
    assert main(["train", *args]) == 0
    said = capfd.readouterr().err
    assert "an epoch is one pass over the unlabeled pool: 30 images, 16 a step, 2 steps" in said
    history = pd.read_csv(tmp_path / "train" / "history.csv")
    labeled = int((pd.read_csv(tmp_path / "split.csv")["subset"] == "labeled").sum())
    assert history["train_images"].iloc[0] == 30 + 8 + 7  # the pool once + B labeled, then ceil(14 / 2)
    assert (history["train_labeled_images"].iloc[0], history["train_unlabeled_images"].iloc[0]) == (15, 30)
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("sslmae").experiment_id],
                                filter_string="tags.`sslmae.kind` = 'train'")
    tags = run.data.tags
    assert tags["sslmae.data.pool"] == "30" and tags["sslmae.data.labeled"] == str(labeled)
    assert tags["sslmae.data.hidden"] == "0" and len(tags["sslmae.data.pool.sha256"]) == 64
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert (metrics["labeled_images"], metrics["pool_images"]) == (labeled, 30)  # the report's run summary shows them


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_an_ingested_dataset_is_a_pool_source(tmp_path, fmt):
    """An archive ingested once (as files or shards) is a pool source: its images under their ids."""
    labeled = labels_csv_dataset(tmp_path / "lab", n=6)
    archive = labels_csv_dataset(tmp_path / "other", n=5)  # labels it has are not used
    for i in range(5):
        (archive / "images" / f"im{i}.png").unlink()
        save(archive / "images" / f"x{i}.png", seed=500 + i)
    (archive / "labels.csv").write_text((archive / "labels.csv").read_text().replace("\nim", "\nx"))
    ingest(str(archive), tmp_path / "archive", format=fmt, shard_bytes=65536, log=quiet)
    res = ingest(str(labeled), tmp_path / "out", unlabeled=[str(tmp_path / "archive")], log=quiet)
    data = load_dataset(tmp_path / "out")
    assert res.report["pool"]["n_images"] == 5 and sorted(np.asarray(data.ids)[~data.known]) == [f"x{i}" for i in range(5)]
