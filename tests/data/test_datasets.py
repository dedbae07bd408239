"""Checks of real datasets and their splits, as Made-With-ML tests data beside code: the manifest's
schema and contents, and a split's subsets (disjoint, covering, every label labeled, identical
images together, shares near what params ask).

They run on the embedded synthetic dataset (ingested and split here), on UC Merced when
../shared holds it, and on this project's own `data.dir` and `data.split_file` when a run has
made them (after `make run`: the data the pipeline trained on). `pytest tests/data` checks a
team's own data the same way.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sslmae.config import load_config
from sslmae.datasets.ingest import MANIFEST_COLUMNS, POOL_COLUMNS, ingest
from sslmae.datasets.load import MANIFEST, load_dataset
from sslmae.datasets.synth import POOL, write_synthetic
from sslmae.split import PAPER_FRACTION, SUBSETS, read_split, split_dataset
from tests.conftest import REPO, UCM

PARAMS = load_config(REPO / "params.yaml")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _quiet(*args, **kw):
    pass


def _fraction(asked: float | None, root: Path) -> float:
    """The labeled fraction a split made with `asked` used (null: 1 with a pool, else the paper's)."""
    if asked is not None:
        return asked
    return 1.0 if load_dataset(root).known is not None else PAPER_FRACTION


@pytest.fixture(scope="module", params=["synthetic", "ucm_mlc", "project"])
def dataset(request, tmp_path_factory) -> tuple[Path, Path, float]:
    """(ingested dataset folder, split table, labeled fraction asked for)."""
    if request.param == "project":  # what this checkout's pipeline trained on, if it ran
        root, split = REPO / PARAMS.data.dir, REPO / PARAMS.data.split_file
        if not ((root / MANIFEST).is_file() and split.is_file()):
            pytest.skip(f"no ingested {PARAMS.data.dir} and {PARAMS.data.split_file} here (run `make run` first)")
        return root, split, _fraction(PARAMS.split.fraction, root)
    work = tmp_path_factory.mktemp(request.param)
    pool = []
    if request.param == "synthetic":  # the embedded dataset, its pool included, as make run makes it
        source = write_synthetic(work / "synth", n=PARAMS.synth.n, size=PARAMS.synth.size, seed=PARAMS.synth.seed,
                                 unlabeled=PARAMS.synth.unlabeled)
        fraction, pool = PARAMS.split.fraction, [str(source / POOL)]
    else:
        if not (UCM / "labels.csv").is_file():
            pytest.skip(f"{UCM} not present")
        source, fraction = UCM, 0.05
    root = ingest(str(source), work / "dataset", unlabeled=pool, log=_quiet).out
    split = split_dataset(root, work / "split.csv", fraction=fraction, val=PARAMS.split.val, test=PARAMS.split.test,
                          seed=PARAMS.split.seed)
    assert split is not None
    return root, work / "split.csv", _fraction(fraction, root)


def test_the_manifest_has_the_schema_ingest_writes(dataset):
    root, _, _ = dataset
    table = pq.read_table(root / MANIFEST)
    pooled = "labeled" in table.schema.names  # a dataset with an unlabeled pool
    assert table.schema.remove_metadata() == pa.schema({**MANIFEST_COLUMNS, **(POOL_COLUMNS if pooled else {})})
    frame = table.to_pandas()
    if pooled:
        pool = frame[~frame["labeled"]]
        assert len(pool) and all(not any(v) for v in pool["labels"]) and pool["split"].isna().all()
        assert pool["origin"].str.fullmatch(r"source|unlabeled/\d+").all()
        assert frame.loc[frame["labeled"], "origin"].eq("source").all()
    assert len(frame) > 0 and frame["image"].is_unique and frame["path"].is_unique
    assert frame["sha256"].str.match(SHA256).all() and frame["content_sha256"].str.match(SHA256).all()
    assert frame["split"].isna().all() or frame["split"].isin(["train", "val", "test"]).all()
    assert (frame[["width", "height"]] > 0).all().all() and frame["bands"].isin([1, 2, 3, 4]).all()


def test_every_image_is_there_and_is_what_the_manifest_says(dataset):
    root, _, _ = dataset
    frame = pq.read_table(root / MANIFEST).to_pandas()
    sample = frame.sample(n=min(50, len(frame)), random_state=0)  # hashing all of a large dataset is slow
    for path, digest in zip(sample["path"], sample["sha256"]):
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == digest, path
    assert all((root / p).is_file() for p in frame["path"])


def test_labels_are_binary_named_and_each_one_occurs(dataset):
    root, _, _ = dataset
    data = load_dataset(root)
    names = data.label_names
    assert len(names) == len(set(names)) > 1 and all(n.strip() == n and n for n in names)
    assert data.labels.shape == (len(data), len(names)) and set(np.unique(data.labels)) <= {0, 1}
    assert (data.labels.sum(0) > 0).all(), [n for n, c in zip(names, data.labels.sum(0)) if c == 0]
    if data.task == "mcc":
        assert (data.labels.sum(1) == 1).all()
    frame = pq.read_table(root / MANIFEST).to_pandas()
    positives = [[n for n, v in zip(names, row) if v] for row in data.labels]
    assert [list(x) for x in frame["label_names"]] == positives  # the two label columns agree


def test_the_split_is_disjoint_covering_and_labels_every_label(dataset):
    root, split_file, _ = dataset
    data = load_dataset(root)
    table = pd.read_csv(split_file)
    assert list(table.columns) == ["image", "subset"] and table["image"].is_unique
    assert set(table["subset"]) <= set(SUBSETS)
    subsets = read_split(split_file, data.ids)  # every image has exactly one subset
    if data.known is not None:  # the pool is unlabeled, never val or test
        assert set(subsets[~data.known]) == {"unlabeled"}
    train = np.isin(subsets, ("labeled", "unlabeled"))
    labeled = subsets == "labeled"
    in_train = data.labels[train].sum(0) > 0
    assert (data.labels[labeled].sum(0) > 0)[in_train].all(), "a label present in train has no labeled example"
    assert all((subsets == s).any() for s in ("labeled", "val", "test"))


def test_identical_images_never_straddle_subsets(dataset):
    root, split_file, _ = dataset
    frame = pq.read_table(root / MANIFEST).to_pandas()
    frame["subset"] = read_split(split_file, list(frame["image"]))
    straddling = frame.groupby("content_sha256")["subset"].nunique()
    assert (straddling == 1).all(), frame[frame["content_sha256"].isin(straddling[straddling > 1].index)]


def test_the_shares_are_what_params_ask(dataset):
    root, split_file, fraction = dataset
    data = load_dataset(root)
    subsets = read_split(split_file, data.ids)
    if data.known is not None:  # the shares are of the labeled images; the pool is apart
        subsets = subsets[data.known]
    n = len(subsets)
    if pq.read_table(root / MANIFEST).column("split").null_count == n:  # no predefined split
        for name, share in (("val", PARAMS.split.val), ("test", PARAMS.split.test)):
            assert abs((subsets == name).mean() - share) <= 0.03 + 2 / n, name
    train = np.isin(subsets, ("labeled", "unlabeled")).sum()
    labels = data.labels.shape[1]
    # stratified to the fraction, topped up so that every label has a labeled example
    assert fraction * train - 2 <= (subsets == "labeled").sum() <= fraction * train + labels + 2
