"""Report figures and the self-contained HTML page, on fixtures shaped like the real outputs:
history.csv / metrics.json of a run, metrics.json / per_class.csv / scores.npz of an
evaluation, trials.csv / selected.json / one folder per trial of a grid search."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sslmae.metrics import per_class_table
from sslmae.report import plots
from sslmae.report.markup import write_report
from sslmae.report.pages import render_grid, render_run

# a label with characters that must be escaped, and one that never occurs in the test subset
LABELS = ["buildings", "cars", "field", "sand & <dunes>", "trees", "water"]
ABSENT = "water"
TRIALS = [("w0.1", 0.1, False), ("w0.5", 0.5, False), ("w0.9", 0.9, False), ("learned", 0.5, True)]
SELECTED = "w0.5"


# -- fixtures -----------------------------------------------------------------------
def _history(epochs: int, w0: float, learn: bool, seed: int) -> pd.DataFrame:
    """history.csv as sslmae.train writes it: train columns, then w, lr, then val_*."""
    rng = np.random.default_rng(seed)
    e = np.arange(epochs)
    l_rec = 0.8 * np.exp(-e / 6) + 0.2 + rng.normal(0, 0.01, epochs)
    l_cls = 0.7 * np.exp(-e / 4) + 0.1 + rng.normal(0, 0.01, epochs)
    w = 1 / (1 + np.exp(-(np.log(w0 / (1 - w0)) + 0.15 * e))) if learn else np.full(epochs, w0)
    return pd.DataFrame({
        "epoch": e, "train_loss": (1 - w) * l_rec + w * l_cls, "train_l_rec": l_rec, "train_l_cls": l_cls,
        "w": w, "lr": 1e-3 * np.cos(e / epochs * np.pi / 2), "train_w": w,
        "val_macro_auprc": 0.35 + 0.4 * (1 - np.exp(-e / 3)) + rng.normal(0, 0.01, epochs),
        "val_micro_f1": 0.3 + 0.3 * (1 - np.exp(-e / 3)),
    })


def _write_run(folder: Path, w0: float = 0.5, learn: bool = False, seed: int = 0, epochs: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    history = _history(epochs, w0, learn, seed)
    history.to_csv(folder / "history.csv", index=False)
    best = int(history["val_macro_auprc"].idxmax())
    (folder / "metrics.json").write_text(json.dumps({
        "best_epoch": best, "epochs": epochs, "train_seconds": 12.5, "w_final": float(history["w"].iloc[-1]),
        "val_macro_auprc": float(history["val_macro_auprc"].iloc[best]), "val_micro_f1": 0.55,
        "val_n_labels_absent": 0,
    }))
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return _write_run(tmp_path / "runs" / "train")


@pytest.fixture
def eval_dir(tmp_path) -> Path:
    """An evaluation of 40 images, 6 labels, `water` without a positive."""
    rng = np.random.default_rng(1)
    y = (rng.random((40, len(LABELS))) < 0.35).astype(np.uint8)
    y[:, LABELS.index(ABSENT)] = 0
    y[0, :2] = 1  # every other label has a positive whatever the draw
    y[1, 2:5] = 1
    scores = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1).astype(np.float32)
    out = tmp_path / "runs" / "eval"
    out.mkdir(parents=True)
    np.savez(out / "scores.npz", y=y, scores=scores, label_names=np.array(LABELS))
    per_class_table(y, scores, (scores >= 0.5).astype(np.uint8), LABELS).to_csv(
        out / "per_class.csv", index=False, float_format="%.6f")
    (out / "metrics.json").write_text(json.dumps({
        "macro_auprc": 0.7123, "micro_f1": 0.66, "macro_f1": 0.64, "n_labels_absent": 1,
        "subset": "test", "threshold": 0.5, "task": "mlc",
    }))
    return out


@pytest.fixture
def grid_dir(tmp_path) -> Path:
    """3 fixed-w trials and 1 learnable one; `w0.5` selected."""
    grid = tmp_path / "runs" / "grid"
    rows = []
    for i, (name, w, learn) in enumerate(TRIALS):
        folder = _write_run(grid / name, w0=w, learn=learn, seed=10 + i, epochs=8)
        m = json.loads((folder / "metrics.json").read_text())
        rows.append({"trial": name, "w": w, "learn_w": learn, "w_final": m["w_final"] if learn else np.nan,
                     "val_macro_auprc": 0.6 + 0.05 * i - (0.08 if name == "w0.9" else 0),
                     "best_epoch": m["best_epoch"], "checkpoint": f"{name}/model.pt", "val_micro_f1": 0.5})
    rows[1]["val_macro_auprc"] = 0.81  # the selected trial is the best one
    pd.DataFrame(rows).to_csv(grid / "trials.csv", index=False)
    (grid / "selected.json").write_text(json.dumps(
        {"trial": SELECTED, "metric": "macro_auprc", "value": 0.81, "checkpoint": f"{SELECTED}/model.pt"}))
    return grid


@pytest.fixture
def fractions() -> pd.DataFrame:
    rows = []
    for mode, gain in (("semi_supervised", 0.05), ("supervised_baseline", 0.0)):
        for f in (0.01, 0.05, 0.1, 0.25, 1.0):
            for seed in (0, 1):
                rows.append({"mode": mode, "fraction": f, "seed": seed,
                             "test_macro_auprc": 0.35 + 0.5 * f ** 0.3 + gain + 0.01 * seed})
    return pd.DataFrame(rows)


# -- helpers ------------------------------------------------------------------------
def _assert_png(data: bytes, min_size=(300, 150)) -> None:
    assert isinstance(data, bytes) and data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG"
    assert img.width >= min_size[0] and img.height >= min_size[1]
    assert len(data) > 5000
    # something was drawn: a blank canvas has one or two colours
    assert len(np.unique(np.asarray(img.convert("L")))) > 20


def _assert_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page):
        assert attr.startswith("data:image/png;base64,"), attr[:80]
    assert "url(" not in page  # no CSS fetches either


def _img_count(page: str) -> int:
    return len(re.findall(r'<img [^>]*src="data:image/png;base64,', page))


# -- figures ------------------------------------------------------------------------
def test_plots_return_png(run_dir, eval_dir, grid_dir, fractions):
    history = pd.read_csv(run_dir / "history.csv")
    z = np.load(eval_dir / "scores.npz")
    trials = pd.read_csv(grid_dir / "trials.csv")
    figures = {
        "learning_curves": plots.learning_curves(history),
        "w_trajectory": plots.w_trajectory(history),
        "per_class_ap": plots.per_class_ap(pd.read_csv(eval_dir / "per_class.csv")),
        "pr_curves": plots.pr_curves(z["y"], z["scores"], z["label_names"]),
        "metric_vs_w": plots.metric_vs_w(trials, "macro_auprc", selected=SELECTED),
        "metric_vs_w_column": plots.metric_vs_w(trials, "val_macro_auprc"),
        "label_fraction_curve": plots.label_fraction_curve(fractions, "macro_auprc"),
    }
    for name, png in figures.items():
        try:
            _assert_png(png)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e
    # same inputs, same bytes (no timestamps in the PNG): reports are stable outputs
    assert plots.learning_curves(history) == figures["learning_curves"]


def test_plots_without_data_still_draw():
    _assert_png(plots.pr_curves(np.zeros((5, 2), np.uint8), np.random.default_rng(0).random((5, 2)), ["a", "b"]))
    _assert_png(plots.per_class_ap(pd.DataFrame({"label": ["a"], "support": [0], "ap": [np.nan]})), (300, 100))
    _assert_png(plots.learning_curves(pd.DataFrame({"epoch": [0, 1]})))
    _assert_png(plots.w_trajectory(pd.DataFrame({"epoch": [], "w": []})), (300, 100))


def test_plots_reject_bad_input():
    with pytest.raises(ValueError, match="do not match"):
        plots.pr_curves(np.zeros((4, 3)), np.zeros((4, 2)), ["a", "b"])
    with pytest.raises(KeyError, match="w"):
        plots.w_trajectory(pd.DataFrame({"epoch": [0]}))
    with pytest.raises(KeyError, match="no column for metric 'f2'"):
        plots.metric_vs_w(pd.DataFrame({"trial": ["a"], "w": [0.5], "learn_w": [False], "w_final": [None]}), "f2")


def test_learn_w_read_from_strings(grid_dir):
    """A trials table whose learn_w went through a CSV as 'true'/'false' strings still plots."""
    trials = pd.read_csv(grid_dir / "trials.csv")
    trials["learn_w"] = trials["learn_w"].map({True: "true", False: "false"})
    _assert_png(plots.metric_vs_w(trials, "macro_auprc"))


def test_import_has_no_side_effects():
    """No pyplot, no rcParams change (backend included) from importing or drawing. rcParams
    is read with RcParams._get: a plain rcParams['backend'] would itself import pyplot."""
    code = ("import sys, matplotlib as m; rc = lambda: {k: m.rcParams._get(k) for k in m.rcParams};"
            "before = rc(); import sslmae.report.pages; from sslmae.report import plots; import pandas as pd;"
            "plots.w_trajectory(pd.DataFrame({'epoch': [0, 1], 'w': [0.2, 0.3]}));"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported';"
            "assert str(rc()) == str(before), 'rcParams changed'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- run page -----------------------------------------------------------------------
def test_render_run(run_dir, eval_dir):
    page = render_run(run_dir, eval_dir)
    _assert_self_contained(page)
    assert page.startswith("<!DOCTYPE html>") and "<title>SSL-MAE run report: train</title>" in page
    for anchor in ("metrics", "per-class", "pr-curves", "training"):
        assert f'<section id="{anchor}">' in page
    # metrics table: test and validation side by side, then the run's other entries
    assert "<th>test</th><th>validation (best epoch)</th>" in page
    assert "<td>macro_auprc</td><td>0.7123</td>" in page
    best = json.loads((run_dir / "metrics.json").read_text())["best_epoch"]
    assert "<td>w_final</td><td>0.5000</td>" in page and f"<td>best_epoch</td><td>{best}</td>" in page
    # per-class table: one row per label, escaped; NaN AP of the absent label as a dash
    for label in LABELS:
        assert f"<td>{label.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</td>" in page
    assert "sand & <dunes>" not in page
    assert f"<td>{ABSENT}</td><td>0</td><td>&mdash;</td>" in page
    assert f"No positive example, no curve: {ABSENT}." in page
    assert _img_count(page) == 4  # AP bars, PR curves, learning curves, w trajectory
    assert page.count('class="note"') == 1  # only the absent label: no input is missing


def test_render_run_missing_optional_inputs(run_dir, eval_dir, tmp_path):
    page = render_run(run_dir, None)
    assert "No evaluation folder given" in page
    assert _img_count(page) == 2 and "<td>val_macro_auprc</td>" not in page

    empty = tmp_path / "empty_eval"
    empty.mkdir()
    (run_dir / "metrics.json").unlink()
    page = render_run(run_dir, empty)
    for missing in ("metrics.json not found: test metrics skipped", "per_class.csv not found",
                    "scores.npz not found", "metrics.json not found: validation metrics skipped"):
        assert missing in page
    assert _img_count(page) == 2
    _assert_self_contained(page)

    history = pd.read_csv(run_dir / "history.csv").drop(columns=["w"])
    history.to_csv(run_dir / "history.csv", index=False)
    page = render_run(run_dir, eval_dir)
    assert "has no column w: w trajectory skipped" in page and _img_count(page) == 3


def test_render_run_requires_history(tmp_path, eval_dir):
    with pytest.raises(FileNotFoundError, match=r"history\.csv"):
        render_run(tmp_path / "nothing", eval_dir)


# -- grid page ----------------------------------------------------------------------
def test_render_grid(grid_dir, eval_dir, fractions):
    page = render_grid(grid_dir, eval_dir, fractions)
    _assert_self_contained(page)
    assert "<title>SSL-MAE grid search report: grid</title>" in page
    for anchor in ("grid", "metrics", "per-class", "pr-curves", "fractions", "trials"):
        assert f'<section id="{anchor}">' in page
    assert f"Selected trial: <strong>{SELECTED}</strong> (validation macro_auprc = 0.8100)" in page
    # the trials table, selected row highlighted and only it
    assert "<th>trial</th><th>w</th><th>learn_w</th><th>w_final</th><th>val_macro_auprc</th>" in page
    assert page.count('<tr class="selected">') == 1
    assert f'<tr class="selected"><td>{SELECTED}</td>' in page
    # test metrics of the evaluation beside the validation metrics of the selected trial
    val = json.loads((grid_dir / SELECTED / "metrics.json").read_text())["val_macro_auprc"]
    assert f"<td>macro_auprc</td><td>0.7123</td><td>{val:.4f}</td>" in page
    for name, _, _ in TRIALS:
        assert f"<h3>{name}{' (selected)' if name == SELECTED else ''}</h3>" in page
    assert "<td>semi_supervised</td>" in page and "<td>supervised_baseline</td>" in page
    # metric vs w + fraction curve + AP bars + PR curves + (curves + w) per trial
    assert _img_count(page) == 4 + 2 * len(TRIALS)
    assert page.count('class="note"') == 1  # only the absent label: no input is missing


def test_render_grid_missing_optional_inputs(grid_dir):
    (grid_dir / "selected.json").unlink()
    shutil.rmtree(grid_dir / "w0.9")
    page = render_grid(grid_dir)
    _assert_self_contained(page)
    assert "selected.json not found: no selected trial to highlight" in page
    assert "w0.9/history.csv not found: curves of this trial skipped" in page
    assert "No evaluation folder given" in page
    assert '<tr class="selected">' not in page and '<section id="fractions">' not in page
    assert _img_count(page) == 1 + 2 * (len(TRIALS) - 1)


def test_render_grid_requires_trials(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trials\.csv"):
        render_grid(tmp_path)


def test_render_grid_rejects_trial_names_outside_the_grid(grid_dir):
    trials = pd.read_csv(grid_dir / "trials.csv")
    trials.loc[0, "trial"] = "../train"
    trials.to_csv(grid_dir / "trials.csv", index=False)
    with pytest.raises(ValueError, match="not a folder name"):
        render_grid(grid_dir)


def test_write_report_is_atomic(run_dir, tmp_path):
    out = tmp_path / "reports" / "report.html"
    page = render_run(run_dir)
    assert write_report(page, out) == out
    assert out.read_text(encoding="utf-8") == page
    assert os.listdir(out.parent) == ["report.html"]  # no temporary file left behind
    assert out.stat().st_mode & 0o777 == 0o644  # readable by others, unlike mkstemp's 0600


# -- in a real browser ----------------------------------------------------------------
# after load, mark <body> with how many images there are and how many decoded
