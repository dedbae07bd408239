"""The quality benchmark (label-fraction curve with a predefined split) and the UCM packer,
run as on the lent GPU machine: without mlflow, kfp, dvc or boto3."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import write_predefined
from tests.integration.test_bench_gpu import run_bench

KEYS = {"dataset", "fraction", "mode", "w", "pretrained", "train_seconds", "gpu", "macro_auprc", "micro_f1", "macro_f1"}


@pytest.mark.slow  # trains in a subprocess
def test_quality_bench_writes_the_issue_keys_a_plot_and_a_table(tmp_path, synth_dir):
    predefined = write_predefined(synth_dir, tmp_path / "split_seed42.csv")
    proc = run_bench("bench_quality.py", "--data", str(synth_dir), "--predefined", str(predefined),
                     "--fractions", "0.3", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "res"),
                     "--plot", str(tmp_path / "curve.png"), "data.img_size=32", "model.backbone=micro",
                     "model.patch_size=4", "model.mask_patch_size=8", "train.epochs=1", "train.batch_size=8",
                     "train.accelerator=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = (tmp_path / "res").glob("quality_*.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mode"] for r in rows] == ["semi_supervised", "supervised_baseline"]
    for r in rows:
        assert KEYS <= set(r) and r["fraction"] == 0.3 and r["pretrained"] is False
        assert 0 < r["macro_auprc"] <= 1 and r["gpu"].startswith("cpu")
    assert Image.open(tmp_path / "curve.png").format == "PNG"
    assert "| 0.3 |" in proc.stdout and "semi_supervised macro AUPRC" in proc.stdout


def test_quality_bench_refuses_a_missing_split_table(tmp_path, synth_dir):
    proc = run_bench("bench_quality.py", "--data", str(synth_dir), "--work", str(tmp_path / "w"),
                     "--out", str(tmp_path / "res"))
    assert proc.returncode == 2 and "split_seed42.csv" in proc.stderr
    assert not (tmp_path / "res").exists()


def _fake_ucm(root, n=4):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"scene{i:02d}" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg", quality=95)
    pd.DataFrame({"image": names, "a": [1, 0, 1, 0], "b": [0, 1, 1, 0]}).to_csv(root / "labels.csv", index=False)
    pd.DataFrame({"image": names, "split": ["train", "train", "val", "test"]}).to_csv(root / "split_seed42.csv", index=False)
    return root


def test_pack_ucm_reencodes_images_and_copies_tables(tmp_path):
    src = _fake_ucm(tmp_path / "src")
    proc = run_bench("pack_ucm.py", "--src", str(src), "--dst", str(tmp_path / "dst"))
    assert proc.returncode == 0, proc.stderr
    dst = tmp_path / "dst"
    assert sorted(p.name for p in (dst / "images").iterdir()) == sorted(p.name for p in (src / "images").iterdir())
    for path in (dst / "images").iterdir():
        with Image.open(path) as img, Image.open(src / "images" / path.name) as orig:
            assert img.format == "JPEG" and img.size == orig.size
    assert (dst / "labels.csv").read_bytes() == (src / "labels.csv").read_bytes()
    assert (dst / "split_seed42.csv").read_bytes() == (src / "split_seed42.csv").read_bytes()


@pytest.mark.parametrize("drop", ["images", "split_seed42.csv"])
def test_pack_ucm_names_what_is_missing_and_leaves_nothing(tmp_path, drop):
    import shutil

    src = _fake_ucm(tmp_path / "src")
    target = src / drop
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    proc = run_bench("pack_ucm.py", "--src", str(src), "--dst", str(tmp_path / "dst"))
    assert proc.returncode == 2 and drop in proc.stderr
    assert not (tmp_path / "dst").exists()


@pytest.mark.slow  # trains in a subprocess
def test_gpu_run_script_quality_part_runs_from_a_carried_folder(tmp_path, synth_dir):
    """The device script's plumbing, with a tiny recipe: data folder, recipe, results under $OUT."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO

    data = tmp_path / "ucm"
    shutil.copytree(synth_dir, data)
    write_predefined(synth_dir, data / "split_seed42.csv")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("data: {img_size: 32}\nmodel: {backbone: micro, patch_size: 4, mask_patch_size: 8}\n"
                      "train: {epochs: 1, batch_size: 8, accelerator: cpu}\ntracking: {enabled: false}\n")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "DATA": str(data), "RECIPE": str(recipe), "PYTHON": sys.executable,
           "WORK": str(tmp_path / "work")}
    script = str(REPO / "bench" / "gpu_run.sh")
    proc = subprocess.run(["bash", script, "quality"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = (tmp_path / "out").glob("quality_*.jsonl")
    assert json.loads(out.read_text().splitlines()[0])["fraction"] == 0.1
    assert "torch" in (tmp_path / "out" / "versions.txt").read_text()
    usage = subprocess.run(["bash", script, "nonsense"], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
    env["DATA"] = str(tmp_path / "absent")
    missing = subprocess.run(["bash", script, "quality"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "pack_ucm" in missing.stderr


def test_plot_quality_labels_configurations_and_draws(tmp_path):
    rows = [
        {"fraction": 0.1, "mode": "semi_supervised", "params": "params.yaml", "overrides": ["data.cache_dir=/x"],
         "epochs": 30, "macro_auprc": 0.5},
        {"fraction": 0.1, "mode": "semi_supervised", "params": "ucm_cpu.yaml", "overrides": [], "epochs": 30,
         "macro_auprc": 0.6},
        {"fraction": 0.1, "mode": "supervised_baseline", "params": "params.yaml", "overrides": [], "epochs": 30,
         "macro_auprc": 0.3},
        {"fraction": 0.1, "mode": "supervised_baseline", "params": "params.yaml", "overrides": [], "epochs": 246,
         "macro_auprc": 0.61},
    ]
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_bench("plot_quality.py", str(src), "--out", str(tmp_path / "q.png"))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "q.png").format == "PNG"
    for name in ("semi_supervised [ucm_cpu.yaml]", "supervised_baseline (equal epochs)",
                 "supervised_baseline (equal steps)"):
        assert name in proc.stdout
    assert "cache_dir" not in proc.stdout
    seeded = [{**rows[1], "seed": s, "macro_auprc": v} for s, v in ((1, 0.5), (2, 0.7))]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows + seeded))
    proc = run_bench("plot_quality.py", str(src), "--out", str(tmp_path / "q.png"))
    assert "| 0.6" in proc.stdout and "0.600 ± 0.100 (3)" in proc.stdout  # three seeds: mean ± sd (n)
