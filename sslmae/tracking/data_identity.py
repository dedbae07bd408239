"""Which data a registered model belongs to, and under which registered model name it goes.

A champion belongs to its data: the promotion gate compares a challenger only with the champion
of the same data, and a model of other data is neither promoted over that champion nor refused
because of it; it goes to a registered model of its own.

"The same data" is the frozen test set. A dataset that grows under a frozen split (split.frozen)
keeps every earlier image on its side, so the test images of the split's first generation stay
while new images join; scheduled retraining on a grown archive is the same data. The key is the
sha256 of those test ids (sorted, one a line): generation 0 of the split history
(`<split>.history.csv`, beside the table or where the Kubeflow store keeps it), or, without a
history, every test image of the table. A split made afresh (split.frozen false, another seed, other
images) is other data.

The name rule (the one a team reading `models:/sslmae@champion` expects; docs/architecture.md):
- `tracking.registered_model` (default `sslmae`) belongs to the first data registered under it
  (registered model tag `sslmae.data.key`);
- a model of other data goes to `<name>-<first 8 hex of its key>` (16 where 8 collide), made on
  first use, with its own challenger and champion;
- a registered model made before sslmae recorded data keys (no tag, but versions) is "data
  unknown": a one-line warning names it, and the model goes to its own name as for other data until
  the user adopts the old one for this data (`sslmae adopt`).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from sslmae.digest import file_sha256
from sslmae.split import history_file, read_history, read_table
from sslmae.tracking.lineage import dataset_digest

KEY_TAG = "sslmae.data.key"
DATASET_TAG = "sslmae.dataset.sha256"
SPLIT_TAG = "sslmae.split.sha256"
DESCRIPTION = "SSL-MAE multi-label classifier (sslmae)"


@dataclass(frozen=True)
class DataIdentity:
    """The data a model was split and trained on: `key` (its frozen test set, see the module) and,
    for the record, the sha256 of the dataset's table and of the split table."""

    key: str
    dataset_sha256: str | None = None
    split_sha256: str | None = None

    @property
    def short(self) -> str:
        return self.key[:8]

    def tags(self) -> dict[str, str]:
        found = ((KEY_TAG, self.key), (DATASET_TAG, self.dataset_sha256), (SPLIT_TAG, self.split_sha256))
        return {k: v for k, v in found if v}


def split_key(split_file: str | Path, history: str | Path | None = None) -> str:
    """sha256 hex of the split's first-generation test ids (`history`, default beside the table);
    every test id of the table where there is no history."""
    table = read_table(split_file)
    test = set(table.loc[table["subset"] == "test", "image"])
    past = read_history(history if history is not None else history_file(split_file))
    if past is not None and len(past):
        first = set(past.loc[past["generation"] == past["generation"].min(), "image"])
        test = (test & first) or test
    return hashlib.sha256("\n".join(sorted(test)).encode()).hexdigest()


def data_identity(dataset_dir: str | Path, split_file: str | Path, history: str | Path | None = None,
                  key: str = "") -> DataIdentity:
    """The identity of the data at `dataset_dir` split by `split_file`; `key` when the caller already has
    it (Kubeflow's split step computed it from the store's history, which this step does not see)."""
    if not Path(split_file).is_file():
        raise FileNotFoundError(f"{split_file}: split table not found: the registry needs the split a model was "
                                "trained on to know its data (data.split_file)")
    return DataIdentity(key or split_key(split_file, history), dataset_digest(dataset_dir), file_sha256(split_file))


def warn(message: str) -> None:
    print(message, file=sys.stderr)


def _registered(mlflow_client, name: str):
    """The registered model `name`, or None."""
    found = mlflow_client.search_registered_models(filter_string=f"name = '{name}'")
    return found[0] if found else None


def _has_versions(mlflow_client, name: str) -> bool:
    return bool(mlflow_client.search_model_versions(f"name = '{name}'", max_results=1))


def model_name(mlflow_client, base: str, identity: DataIdentity, create: bool = False, log=warn) -> str:
    """The registered model that holds models of `identity`'s data (the module's rule); with
    `create`, it is made (or claimed, when empty) and tagged with the key."""
    found = _registered(mlflow_client, base)
    recorded = found.tags.get(KEY_TAG) if found is not None else None
    if recorded == identity.key:
        return base
    if found is None or (recorded is None and not _has_versions(mlflow_client, base)):
        if create:  # new, or made by hand and empty: it is this data's
            if found is None:
                mlflow_client.create_registered_model(base, description=DESCRIPTION)
            mlflow_client.set_registered_model_tag(base, KEY_TAG, identity.key)
        return base
    own = f"{base}-{identity.short}"
    other = _registered(mlflow_client, own)
    if other is not None and other.tags.get(KEY_TAG) != identity.key:
        own = f"{base}-{identity.key[:16]}"
        other = _registered(mlflow_client, own)
    if recorded is None:
        log(f"registry: {base} records no dataset (registered before sslmae recorded one), so its champion is of "
            f"data unknown; models of this data (key {identity.short}) go to {own}; if {base} was trained on this "
            "data, adopt it: sslmae adopt --params params.yaml (docs/architecture.md, 'Which champion')")
    if create and other is None:
        mlflow_client.create_registered_model(own, tags={KEY_TAG: identity.key}, description=DESCRIPTION)
    return own


def adopt(mlflow_client, base: str, identity: DataIdentity) -> bool:
    """Record `identity` on registered model `base`, which records none (registered before sslmae
    recorded data): its champion becomes this data's. False when it already records this data;
    ValueError when it records other data or does not exist."""
    found = _registered(mlflow_client, base)
    if found is None:
        raise ValueError(f"adopt: no registered model {base} in this registry")
    recorded = found.tags.get(KEY_TAG)
    if recorded == identity.key:
        return False
    if recorded is not None:
        raise ValueError(f"adopt: {base} belongs to other data (key {recorded[:8]}, this data's is {identity.short}): "
                         "its champion is not this data's")
    mlflow_client.set_registered_model_tag(base, KEY_TAG, identity.key)
    return True
