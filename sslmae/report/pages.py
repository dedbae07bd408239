"""One self-contained HTML page for a training run or a grid search.

The page carries everything inline (CSS, figures as data:image/png;base64 URIs) and needs
no network and no JavaScript: it can be mailed, archived as a pipeline artifact or opened
from a bucket. Optional inputs that are missing are skipped with a note on the page;
a missing required input raises FileNotFoundError naming the file. The page has no
timestamp, so the same inputs give the same bytes (a stable DVC/Kubeflow output).

Inputs (as the rest of sslmae writes them):
  run_dir/history.csv    epoch,train_loss,train_l_rec,train_l_cls,w,lr,val_* ...  (required)
  run_dir/metrics.json   flat dict: best_epoch, epochs, w_final, val_<metric> ...
  eval_dir/metrics.json  flat dict of test metrics (+ subset, threshold, task)
  eval_dir/per_class.csv label,support,ap,precision,recall,f1
  eval_dir/scores.npz    y (N, C) uint8, scores (N, C) float32, label_names (C,) str
  grid_dir/trials.csv    trial,w,learn_w,w_final,val_macro_auprc,best_epoch,checkpoint (required)
  grid_dir/selected.json {"trial": name, "metric": "macro_auprc", "value": float, ...}
  grid_dir/<trial>/      history.csv, metrics.json of each trial
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sslmae.report import markup, plots
from sslmae.report.bands_section import bands_section

DEFAULT_METRIC = "macro_auprc"  # PRIMARY["mlc"]; a grid's selected.json names its own

# -- reading ------------------------------------------------------------------------
def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"required report input not found: {path}")
    return path


def _read_json(path: Path) -> dict:
    obj = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_scores(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scores.npz -> y (N, C), scores (N, C), label_names (C,). No pickles: str arrays only."""
    with np.load(path, allow_pickle=False) as z:
        missing = {"y", "scores", "label_names"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing array(s) {sorted(missing)}")
        return z["y"], z["scores"], [str(n) for n in z["label_names"]]


# -- sections -----------------------------------------------------------------------
def _metrics_section(run_metrics_path: Path | None, eval_dir: Path | None, caption: str = "") -> str:
    """Test (eval_dir/metrics.json) beside validation (val_* of run metrics.json) per metric,
    then the run's other entries (best epoch, w_final, ...)."""
    parts, test, run = [f"<p>{markup.esc(caption)}</p>"] if caption else [], {}, {}
    if eval_dir is None:
        parts.append(markup.note("No evaluation folder given: test metrics, per-class results and PR curves skipped."))
    elif (eval_dir / "metrics.json").is_file():
        test = _read_json(eval_dir / "metrics.json")
    else:
        parts.append(markup.note(f"{eval_dir / 'metrics.json'} not found: test metrics skipped."))
    if run_metrics_path is not None:
        if run_metrics_path.is_file():
            run = _read_json(run_metrics_path)
        else:
            parts.append(markup.note(f"{run_metrics_path} not found: validation metrics skipped."))
    val = {k[len("val_"):]: v for k, v in run.items() if k.startswith("val_")}
    names = list(test) + [k for k in val if k not in test]
    if names:
        columns = {"metric": names}
        if test:  # a column of dashes says nothing: leave out a side that is missing
            columns["test"] = pd.Series([test.get(n) for n in names], dtype=object)
        if val:
            columns["validation (best epoch)"] = pd.Series([val.get(n) for n in names], dtype=object)
        parts.append(markup.table(pd.DataFrame(columns)))
    other = {k: v for k, v in run.items() if not k.startswith("val_")}
    if other:
        parts.append("<h3>Run summary</h3>" + markup.kv_table(other))
    sources = [p for p in (eval_dir and eval_dir / "metrics.json", run_metrics_path) if p is not None and p.is_file()]
    if sources:
        parts.append(markup.source(*sources))
    return markup.section("Metrics", "\n".join(parts), "metrics")


def _eval_sections(eval_dir: Path | None) -> list[str]:
    """Per-class table + AP bars (per_class.csv), PR curves (scores.npz); notes when absent."""
    if eval_dir is None:
        return []  # the metrics section already says no evaluation folder was given
    path = eval_dir / "per_class.csv"
    if path.is_file():
        per_class = pd.read_csv(path)
        body = markup.img(plots.per_class_ap(per_class), "AP per label") + markup.table(per_class) + markup.source(path)
    else:
        body = markup.note(f"{path} not found: per-class results skipped.")
    out = [markup.section("Per-class results (test)", body, "per-class")]
    path = eval_dir / "scores.npz"
    if path.is_file():
        y, scores, names = _read_scores(path)
        body = markup.img(plots.pr_curves(y, scores, names), "precision-recall curves") + markup.source(path)
        absent = [n for n, has in zip(names, np.asarray(y).any(0)) if not has]
        if absent:
            body += markup.note(f"No positive example, no curve: {', '.join(absent)}.")
    else:
        body = markup.note(f"{path} not found: precision-recall curves skipped.")
    out.append(markup.section("Precision-recall curves (test)", body, "pr-curves"))
    return out


def _training_body(history_path: Path, label: str) -> str:
    """Learning curves and w trajectory of one history.csv (which must exist)."""
    history = pd.read_csv(_require_file(history_path))
    body = markup.img(plots.learning_curves(history, f"Learning curves: {label}"), f"learning curves of {label}")
    if "w" in history.columns:
        body += markup.img(plots.w_trajectory(history, f"Loss weight w: {label}"), f"w trajectory of {label}")
    else:
        body += markup.note(f"{history_path} has no column w: w trajectory skipped.")
    return body + markup.source(history_path)


# -- pages --------------------------------------------------------------------------
def render_run(run_dir: Path, eval_dir: Path | None = None, dataset: Path | None = None) -> str:
    """The report of one training run (+ its evaluation, when eval_dir is given; + sample tiles of a
    dataset with bands, when `dataset` is given) as HTML."""
    run_dir = Path(run_dir)
    eval_dir = None if eval_dir is None else Path(eval_dir)
    training = _training_body(run_dir / "history.csv", run_dir.name)  # first: the required input
    sections = [_metrics_section(run_dir / "metrics.json", eval_dir), *_eval_sections(eval_dir),
                markup.section("Training", training, "training")]
    bands = bands_section(run_dir / "model.pt", dataset)
    return markup.page(f"SSL-MAE run report: {run_dir.name}", sections + ([bands] if bands else []))


def render_grid(grid_dir: Path, eval_dir: Path | None = None, fractions: pd.DataFrame | None = None,
                dataset: Path | None = None) -> str:
    """The report of a grid search over w (trials.csv, selected.json, one folder per trial);
    eval_dir: the evaluation of the selected model; fractions: one row per (mode, labeled
    fraction) with `fraction`, `mode` and metric columns, for the label-efficiency curve."""
    grid_dir = Path(grid_dir)
    eval_dir = None if eval_dir is None else Path(eval_dir)
    trials = pd.read_csv(_require_file(grid_dir / "trials.csv"), dtype={"trial": str})
    trials["trial"] = trials["trial"].fillna("").astype(str)
    selected_path = grid_dir / "selected.json"
    selected = _read_json(selected_path) if selected_path.is_file() else None
    metric = str(selected.get("metric", DEFAULT_METRIC)) if selected else DEFAULT_METRIC
    # validation metrics of the selected trial beside the test metrics of its evaluation
    chosen_metrics = None
    if selected is not None:
        row = trials[trials["trial"] == str(selected.get("trial"))]
        ckpt = row["checkpoint"].iloc[0] if "checkpoint" in row and len(row) else None
        chosen_metrics = _trial_folder(grid_dir, str(selected.get("trial")), ckpt) / "metrics.json"
    sections = [_selection_section(trials, selected, selected_path, metric),
                _metrics_section(chosen_metrics, eval_dir, "Test: the evaluation of the selected model. "
                                 "Validation: the selected trial at its best epoch."),
                *_eval_sections(eval_dir)]
    if fractions is not None:
        sections.append(_fractions_section(fractions, metric))
    sections.append(_trials_training_section(grid_dir, trials, selected))
    bands = bands_section(chosen_metrics.parent / "model.pt" if chosen_metrics is not None else None, dataset)
    return markup.page(f"SSL-MAE grid search report: {grid_dir.name}", sections + ([bands] if bands else []))


def _selection_section(trials: pd.DataFrame, selected: dict | None, selected_path: Path, metric: str) -> str:
    """The selected trial, the trials table (selected row highlighted), metric vs w."""
    name = None if selected is None else str(selected.get("trial"))
    if selected is None:
        parts = [markup.note(f"{selected_path} not found: no selected trial to highlight.")]
    else:
        value = selected.get("value")
        extra = {k: v for k, v in selected.items() if k not in ("trial", "metric", "value")}
        parts = [f'<p class="highlight">Selected trial: <strong>{markup.esc(name)}</strong> '
                 f"(validation {markup.esc(metric)} = {markup.fmt(value)})</p>"]
        if extra:
            parts.append(markup.kv_table(extra))
        if name not in set(trials["trial"]):
            parts.append(markup.note(f"Selected trial {name!r} is not in trials.csv."))
    highlight = {i for i, t in enumerate(trials["trial"]) if t == name}
    parts.append(markup.table(trials, highlight))
    try:
        col = plots.metric_column(trials, metric, ("val_",))
    except KeyError:
        parts.append(markup.note(f"trials.csv has no column for {metric}: metric vs w plot skipped."))
    else:
        parts.append(markup.img(plots.metric_vs_w(trials, metric, selected=name), f"{col} vs w"))
    return markup.section("Grid search over w", "\n".join(parts), "grid")


def _fractions_section(fractions: pd.DataFrame, metric: str) -> str:
    try:
        col = plots.metric_column(fractions, metric, ("test_", "val_"))
    except KeyError:
        body = markup.note(f"The fractions table has no column for {metric}: curve skipped.")
    else:
        body = markup.img(plots.label_fraction_curve(fractions, metric), f"{col} vs labeled fraction")
    return markup.section("Label efficiency", body + markup.table(fractions), "fractions")


def _trial_folder(grid_dir: Path, trial: str, checkpoint: str | None = None) -> Path:
    """A trial's training folder: where its checkpoint is (trials run in grid.out_dir, apart
    from the selection), else grid_dir/<trial>."""
    if isinstance(checkpoint, str) and checkpoint and Path(checkpoint).parent.is_dir():
        return Path(checkpoint).parent
    folder = grid_dir / trial
    if not trial or folder.resolve().parent != grid_dir.resolve():  # '../x' must not escape the grid
        raise ValueError(f"{grid_dir}: trial name {trial!r} is not a folder name")
    return folder


def _trials_training_section(grid_dir: Path, trials: pd.DataFrame, selected: dict | None) -> str:
    """Learning curves and w of every trial; a trial folder without history.csv gets a note."""
    chosen = None if selected is None else str(selected.get("trial"))
    parts = []
    checkpoints = trials["checkpoint"] if "checkpoint" in trials else [None] * len(trials)
    for trial, checkpoint in zip(trials["trial"], checkpoints):
        folder = _trial_folder(grid_dir, trial, checkpoint)
        head = f"<h3>{markup.esc(trial)}{' (selected)' if trial == chosen else ''}</h3>"
        if not (folder / "history.csv").is_file():
            parts.append(head + markup.note(f"{folder / 'history.csv'} not found: curves of this trial skipped."))
            continue
        body = _training_body(folder / "history.csv", trial)
        if (folder / "metrics.json").is_file():
            body += markup.kv_table(_read_json(folder / "metrics.json"))
        parts.append(head + body)
    return markup.section("Training of each trial", "\n".join(parts), "trials")
