"""bench/bench_loader.py runs end to end on a few tiny synthetic images and writes its JSON."""

import importlib.util
import json

import pytest

from sslmae.datasets.synth import write_synthetic
from tests.conftest import REPO


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("tiny") / "ds", n=6, size=32, seed=0)


def test_authors_transforms_are_their_settings():
    tfs = load_script("bench_loader").authors_transforms(224)
    crop = tfs["unlabeled"].transforms[0]
    assert (crop.scale, crop.ratio) == ((0.4, 1.0), (3 / 4, 4 / 3))
    assert tfs["labeled"].transforms[0].scale == (0.67, 1.0)
    blur = tfs["unlabeled"].transforms[5].transforms[0]
    assert blur.kernel_size == (5, 5) and blur.sigma == (0.1, 2.0)
    jitter = tfs["unlabeled"].transforms[3].transforms[0]
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == ((0.6, 1.4), (0.6, 1.4), (0.8, 1.2),
                                                                                  (-0.1, 0.1))
    assert [type(t).__name__ for t in tfs["unlabeled"].transforms] == [
        "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomApply", "RandomGrayscale",
        "RandomApply", "Resize", "ToTensor"]


@pytest.mark.slow  # ~10 s: times every job and starts a child process for the memory-reusing run
def test_bench_loader_runs_and_writes_json(tmp_path, tiny_images, capsys):
    bench = load_script("bench_loader")
    assert bench.main(["--data", str(tiny_images), "--n", "6", "--size", "32", "--rounds", "1",
                       "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.glob("loader_*.json")
    res = json.loads(out.read_text())
    assert res["n_images"] == 6 and res["image_size"] == 32 and res["cache"]["pixels_identical_to_load_image"]
    assert set(res["pipelines"]) == {"labeled", "unlabeled", "eval"}
    for r in res["pipelines"].values():
        assert r["theirs_ms_per_img"] > 0 and r["a_loader_ms_per_img"] > 0 and r["ratio_a_loader"] > 0
    assert "wrote" in capsys.readouterr().out


def test_bench_loader_skips_without_dataset(tmp_path, capsys):
    assert load_script("bench_loader").main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out and not list(tmp_path.glob("*.json"))
