"""Shared fixtures: every run is shrunk (micro model, tiny images, CPU, 0 workers)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sslmae.config import load_config
from sslmae.datasets.synth import write_synthetic
from sslmae.split import split_dataset
from tests.mlflow_server import mlflow_s3_server, mlflow_server  # noqa: F401  (real MLflow servers)
from tests.s3server import s3, s3_server  # noqa: F401  (fixtures shared by S3 tests)

REPO = Path(__file__).resolve().parents[1]
UCM = REPO.parent / "shared" / "datasets" / "ucm_mlc"
SSLMAE = [sys.executable, "-m", "sslmae.cli"]  # the CLI in a process of its own, as a user runs it

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes: equal folders, equal digests."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def write_predefined(dataset_dir: Path, path: Path) -> Path:
    """A train/val/test table `image,split` (the authors' protocol, like UCM's split_seed42.csv)
    for a dataset folder: a fixed val and test; train is what the labeled fraction is drawn from."""
    import pandas as pd

    base = split_dataset(dataset_dir, path.with_suffix(".base.csv"), fraction=0.5, val=0.2, test=0.25, seed=3)
    base["split"] = base["subset"].replace({"labeled": "train", "unlabeled": "train"})
    base[["image", "split"]].to_csv(path, index=False)
    return path


def tiny_overrides(tmp: Path, data_dir: Path, split_file: Path) -> list[str]:
    return [
        f"data.dir={data_dir}", f"data.split_file={split_file}", "data.img_size=32", f"data.cache_dir={tmp / 'cache'}",
        "model.size=micro", "model.patch_size=4", "model.mask_patch_size=8",
        "train.epochs=2", "train.batch_size=8", "train.progress_bar=false", "train.accelerator=cpu",
        f"train.out_dir={tmp / 'train'}", f"evaluate.out_dir={tmp / 'eval'}", "tracking.enabled=false",
    ]


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """96 synthetic scenes at 32 px, shared read-only by the session."""
    return write_synthetic(tmp_path_factory.mktemp("synth") / "ds", n=96, size=32, seed=0)


@pytest.fixture(scope="session")
def split_file(synth_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("split") / "split.csv"
    split_dataset(synth_dir, path, fraction=0.25, val=0.15, test=0.2, seed=1)
    return path


@pytest.fixture
def tiny_cfg(tmp_path, synth_dir, split_file):
    return load_config(None, tiny_overrides(tmp_path, synth_dir, split_file))
