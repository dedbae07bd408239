"""Shared fixtures: every run is shrunk (micro model, tiny images, CPU, 0 workers).

Tests are sorted by scope, one folder each, and marked by it (`pytest -m unit`, ...):
    unit/          pure functions and model contracts; no training, no servers, no child processes
    integration/   tiny trainings and commands across modules, in-process or as child processes
    system/        real services and tools: DVC, MLflow and S3 servers, Kubeflow's runners,
                   torch.distributed processes, the container image
    data/          checks of real datasets and splits (schemas, disjoint subsets, label coverage)
`make test-fast` runs unit/; `make test` runs them all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from sslmae.config import load_config
from sslmae.datasets.synth import write_synthetic
from sslmae.split import split_dataset
from tests.support.mlflow_server import mlflow_s3_server, mlflow_server  # noqa: F401  (real MLflow servers)
from tests.support.s3server import s3, s3_server  # noqa: F401  (fixtures shared by S3 tests)

REPO = Path(__file__).resolve().parents[1]
UCM = REPO.parent / "shared" / "datasets" / "ucm_mlc"
SSLMAE = [sys.executable, "-m", "sslmae.cli"]  # the CLI in a process of its own, as a user runs it
SCOPES = ("unit", "integration", "system", "data")

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


SESSION_ENV = dict(os.environ)  # the environment the session started with


def _session_environment() -> None:
    """os.environ as the session started, but for pytest's own PYTEST_* variables."""
    for key in [k for k in os.environ if k not in SESSION_ENV and not k.startswith("PYTEST_")]:
        del os.environ[key]
    os.environ.update(SESSION_ENV)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test starts from the environment the session started with: `mlflow.set_tracking_uri`,
    which sslmae calls in-process, also sets $MLFLOW_TRACKING_URI, and a later test's child processes
    (dvc repro) would otherwise log into an earlier store; a session or module fixture runs before
    any test's own fixtures (test_mlflow_model's logs a model), so restoring after each test is not enough."""
    _session_environment()
    yield
    _session_environment()


def pytest_collection_modifyitems(config, items):
    """Each test is marked with the scope of its folder. Under pytest-xdist (make test), the tests that
    use the project image run on one worker (`--dist loadgroup`), so it is built once, and the slow
    tests are handed out first, so that no long test starts last while the other worker idles."""
    for item in items:
        scope = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if scope in SCOPES:
            item.add_marker(getattr(pytest.mark, scope))
        if item.get_closest_marker("container"):
            item.add_marker(pytest.mark.xdist_group("image"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each kind stays


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

    base = split_dataset(dataset_dir, path.with_suffix(".base.csv"), fraction=0.5, val=0.2, test=0.25, seed=3)
    base["split"] = base["subset"].replace({"labeled": "train", "unlabeled": "train"})
    base[["image", "split"]].to_csv(path, index=False)
    return path


def tiny_overrides(tmp: Path, data_dir: Path, split_file: Path) -> list[str]:
    return [
        f"data.dir={data_dir}", f"data.split_file={split_file}", "data.img_size=32", f"data.cache_dir={tmp / 'cache'}",
        "model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
        "train.epochs=2", "train.batch_size=8", "train.progress_bar=false", "train.accelerator=cpu",
        f"train.out_dir={tmp / 'train'}", f"evaluate.out_dir={tmp / 'eval'}", "tracking.enabled=false",
    ]


# What a tiny run needs to learn (tests that assert learning): more images, more epochs, a higher lr.
LEARNING = ["train.epochs=12", "train.batch_size=16", "train.lr=0.002", "train.warmup_epochs=1"]


def chance_auprc(labels) -> float:
    """Macro AUPRC of a random ranking: the mean prevalence of the labels (N, C) 0/1."""
    import numpy as np

    return float(np.asarray(labels, dtype=float).mean(0).mean())


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """96 synthetic scenes at 32 px, shared read-only by the session."""
    return write_synthetic(tmp_path_factory.mktemp("synth") / "ds", n=96, size=32, seed=0)


@pytest.fixture(scope="session")
def split_file(synth_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("split") / "split.csv"
    split_dataset(synth_dir, path, fraction=0.25, val=0.15, test=0.2, seed=1)
    return path


@pytest.fixture(scope="session")
def learnable(tmp_path_factory) -> tuple[Path, Path]:
    """320 synthetic scenes at 32 px and a split with 30 % of train labeled: enough for a tiny
    model to learn well above chance in a dozen epochs (LEARNING)."""
    root = write_synthetic(tmp_path_factory.mktemp("learnable") / "ds", n=320, size=32, seed=0)
    split = root.parent / "split.csv"
    split_dataset(root, split, fraction=0.3, seed=0)
    return root, split


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synth_dir, split_file) -> Path:
    """The tiny model of `tiny_overrides` (2 epochs on synth_dir and split_file) trained once per
    session through `sslmae train`: its run folder (model.pt, checkpoints/, history.csv,
    metrics.json), read-only for its users; a test that trains on in it or damages it copies it first."""
    from sslmae.cli.main import main

    tmp = tmp_path_factory.mktemp("tiny_run")
    assert main(["train", *tiny_overrides(tmp, synth_dir, split_file)]) == 0
    return tmp / "train"


@pytest.fixture
def tiny_cfg(tmp_path, synth_dir, split_file):
    return load_config(None, tiny_overrides(tmp_path, synth_dir, split_file))


@pytest.fixture(scope="session")
def odd_sizes_dir(tmp_path_factory):
    """48 synthetic scenes at 32 px, a quarter of them stored at other sizes (resized on load),
    with a split; shared read-only by the session."""
    root = write_synthetic(tmp_path_factory.mktemp("odd") / "ds", n=48, size=32, seed=3)
    files = sorted((root / "images").iterdir())
    for i, f in enumerate(files[::4]):  # 12 of them, in every subset
        with Image.open(f) as im:  # larger, not square, smaller
            im.convert("RGB").resize([(48, 48), (40, 24), (20, 20)][i % 3], Image.BICUBIC).save(f)
    split = root.parent / "split.csv"
    split_dataset(root, split, fraction=0.3, val=0.2, test=0.2, seed=0)
    return root, split


@pytest.fixture
def decodes(monkeypatch):
    """Counts calls of the one decoding function (the cache builder looks it up per call)."""
    from sslmae.loading import pixels as images  # where the one RGB decoding rule lives

    calls = {"n": 0}
    real = images.decode_rgb

    def counting(path, size):
        calls["n"] += 1
        return real(path, size)

    monkeypatch.setattr(images, "decode_rgb", counting)
    return calls
