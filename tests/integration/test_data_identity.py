"""A champion belongs to its data: the key of a split's frozen test set, and the registered model a
model of that data goes to (sslmae.tracking.data_identity), against a real MLflow sqlite store."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd
import pytest

from sslmae.split import history_file, split_dataset
from sslmae.tracking.data_identity import KEY_TAG, DataIdentity, adopt, data_identity, model_name, split_key


def _subset(src, dst, n):
    """A labels-csv dataset holding the first n images of `src` (a smaller, earlier archive)."""
    (dst / "images").mkdir(parents=True)
    table = pd.read_csv(src / "labels.csv", dtype=str)
    head = table.iloc[:n]
    head.to_csv(dst / "labels.csv", index=False)
    for name in head.iloc[:, 0]:
        found = next((src / "images").glob(f"{name}*"))
        shutil.copy(found, dst / "images" / found.name)
    return dst


def test_the_key_stays_while_data_grows_under_a_frozen_split_and_changes_with_a_new_split(tmp_path, synth_dir):
    small = _subset(synth_dir, tmp_path / "small", 64)
    split = tmp_path / "split.csv"
    split_dataset(small, split, seed=1, frozen=True, history=history_file(split))
    first = split_key(split)

    split_dataset(synth_dir, split, seed=1, frozen=True, history=history_file(split))  # 32 new images join
    grown = pd.read_csv(split)
    assert len(grown) == 96 and split_key(split) == first
    assert data_identity(synth_dir, split).key == first

    # without its history, a table's key is its whole test subset: the grown one is other data
    bare = tmp_path / "bare" / "split.csv"
    bare.parent.mkdir()
    shutil.copy(split, bare)
    assert split_key(bare) != first

    # split afresh with another seed: other data, whatever the images
    split_dataset(synth_dir, split, seed=7, frozen=False, history=history_file(split))
    assert split_key(split) != first


def test_data_identity_names_a_missing_split_table(tmp_path, synth_dir):
    with pytest.raises(FileNotFoundError, match="split table not found"):
        data_identity(synth_dir, tmp_path / "nope.csv")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating one takes seconds); each test its own model names."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture
def registry(store):
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("data-identity")  # not whichever experiment an earlier test in this process made active
    return mlflow.MlflowClient(tracking_uri=store, registry_uri=store)


def _version(client, name):
    """One version of `name`, as a model registered before sslmae recorded data would have."""
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/x.txt")
    return client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)


def test_the_first_data_owns_the_name_and_other_data_gets_its_own(registry):
    a, b = DataIdentity("a" * 64), DataIdentity("b" * 64)
    said = []
    assert model_name(registry, "first", a, create=True, log=said.append) == "first"
    assert registry.get_registered_model("first").tags[KEY_TAG] == a.key
    assert model_name(registry, "first", a, log=said.append) == "first"
    _version(registry, "first")
    assert model_name(registry, "first", b, create=True, log=said.append) == "first-bbbbbbbb"
    assert registry.get_registered_model("first-bbbbbbbb").tags[KEY_TAG] == b.key
    assert model_name(registry, "first", b, log=said.append) == "first-bbbbbbbb"
    assert said == []  # known data on both sides: nothing to warn about
    # a collision of the 8-hex prefix takes 16
    c = DataIdentity("bbbbbbbb" + "c" * 56)
    assert model_name(registry, "first", c, create=True, log=said.append) == "first-bbbbbbbbcccccccc"


def test_a_registry_from_before_data_keys_is_data_unknown_until_adopted(registry):
    registry.create_registered_model("sslmae")
    _version(registry, "sslmae")  # no tag: registered before this change
    a = DataIdentity("a" * 64)
    said = []
    assert model_name(registry, "sslmae", a, create=True, log=said.append) == "sslmae-aaaaaaaa"
    assert len(said) == 1 and "records no dataset" in said[0] and "sslmae adopt" in said[0]
    assert adopt(registry, "sslmae", a) is True
    assert model_name(registry, "sslmae", a, log=said.append) == "sslmae" and len(said) == 1
    assert adopt(registry, "sslmae", a) is False
    with pytest.raises(ValueError, match="belongs to other data"):
        adopt(registry, "sslmae", DataIdentity("d" * 64))
    with pytest.raises(ValueError, match="no registered model nope"):
        adopt(registry, "nope", a)


def test_an_empty_registered_model_made_by_hand_is_claimed(registry):
    registry.create_registered_model("by-hand")
    a = DataIdentity("a" * 64)
    assert model_name(registry, "by-hand", a, create=True) == "by-hand"
    assert registry.get_registered_model("by-hand").tags[KEY_TAG] == a.key
