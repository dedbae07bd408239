"""bench/bench_augment.py runs end to end on a few tiny synthetic images and writes its JSON;
both implementations give the same kind of output."""

import json

import pytest
import torch

from sslmae.augment.streams import AUTHORS_UNLABELED
from sslmae.datasets.synth import write_synthetic
from tests.integration.test_bench_loader import load_script

pytest.importorskip("kornia")


def test_kornia_pipeline_has_the_authors_unlabeled_ops():
    seq = load_script("bench_augment").kornia_stream(AUTHORS_UNLABELED, 32)
    assert [type(op).__name__ for op in seq.children()] == [
        "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "ColorJitter", "RandomGrayscale",
        "RandomGaussianBlur"]


def test_both_implementations_give_the_same_kind_of_output():
    bench = load_script("bench_augment")
    img = torch.rand(3, 32, 32)
    for name, fn in bench.implementations(32).items():
        for stream in bench.streams_of(name):
            c = bench.check(fn, img, stream, 16)
            assert c["shape_ok"] and c["in_unit_range"] and c["differs_between_calls"], (name, stream, c)
            assert c["distinct_rows"] >= 12, (name, stream, c)  # per-image randomness (integer crop boxes may tie)


def test_bench_augment_runs_and_writes_json(tmp_path):
    data = write_synthetic(tmp_path / "ds", n=4, size=32, seed=0)
    bench = load_script("bench_augment")
    assert bench.main(["--data", str(data), "--n", "4", "--sizes", "32", "--batch", "2", "--rounds", "1",
                       "--allocator", "default", "--out", str(tmp_path / "out")]) == 0
    (out,) = (tmp_path / "out").glob("augment_*.json")
    res = json.loads(out.read_text())
    r = res["sizes"]["32"]
    assert r["n_images"] == 4 and set(r["kornia_over_ours"]) == {"labeled", "unlabeled", "mixed"}
    assert all(v > 0 for v in r["ms_per_img"].values()) and "ours/unlabeled" in r["ms_per_img"]
    assert res["machine"]["gpu"].startswith("none")


@pytest.mark.slow  # starts a child process (a few seconds)
def test_bench_augment_reruns_itself_with_the_memory_reusing_allocator(tmp_path):
    data = write_synthetic(tmp_path / "ds", n=2, size=32, seed=0)
    assert load_script("bench_augment").main(["--data", str(data), "--n", "2", "--sizes", "32", "--batch", "2",
                                              "--rounds", "1", "--out", str(tmp_path / "out")]) == 0
    (out,) = (tmp_path / "out").glob("augment_*.json")
    assert out.name.count("_") == 1 and json.loads(out.read_text())["allocator"]["env"]["MALLOC_MMAP_MAX_"] == "0"
