"""Report figures: each function draws one figure and returns it as PNG bytes.

Figures are `matplotlib.figure.Figure` objects on their own Agg canvas, never pyplot: no
global backend switch, no registry of open figures to leak, nothing happens at import.
An input with nothing to draw (no rows, no positives) gives a figure that says so, so a
report always has its picture; a missing column raises KeyError naming it.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, PercentFormatter
from sklearn.metrics import average_precision_score, precision_recall_curve

DPI = 100
LOSS_COLUMNS = {"train_loss": "loss L", "train_l_rec": "L_rec", "train_l_cls": "L_cls"}
VAL_COLUMNS = ("val_macro_auprc", "val_accuracy")  # mlc first, then mcc: the PRIMARY metrics
FRACTION_TICKS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


# -- helpers ------------------------------------------------------------------------
def _figure(width: float = 8.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself to fig: savefig renders with Agg, no pyplot
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # no Software/date metadata: the same inputs give the same bytes
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _as_bool(values: pd.Series) -> pd.Series:
    """CSV round trips give bools, 0/1 or 'True'/'true' strings: read all as bool."""
    if values.dtype == bool:
        return values
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def metric_column(df: pd.DataFrame, metric: str, prefixes: Sequence[str] = ("val_",)) -> str:
    """The column holding `metric`: itself, else the first `prefix + metric` present."""
    for name in (metric, *(p + metric for p in prefixes)):
        if name in df.columns:
            return name
    raise KeyError(f"no column for metric {metric!r} (tried prefixes {list(prefixes)}); has {list(df.columns)}")


def _by_epoch(history: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the rows where `column` is set: train and val rows may differ."""
    rows = history[["epoch", column]].apply(pd.to_numeric, errors="coerce").dropna()
    return rows["epoch"].to_numpy(), rows[column].to_numpy()


# -- training -----------------------------------------------------------------------
def learning_curves(history: pd.DataFrame, title: str | None = None) -> bytes:
    """history: one row per epoch with `epoch` and any of train_loss, train_l_rec, train_l_cls;
    val_macro_auprc (else val_accuracy), when present, goes on a second y axis."""
    _require(history, ["epoch"], "history")
    fig = _figure()
    ax = fig.add_subplot()
    lines = []
    for col, name in LOSS_COLUMNS.items():
        if col in history.columns:
            x, y = _by_epoch(history, col)
            lines += ax.plot(x, y, marker="." if len(x) < 30 else None, label=name)
    val = next((c for c in VAL_COLUMNS if c in history.columns), None)
    if val is not None:
        ax2 = ax.twinx()
        x, y = _by_epoch(history, val)
        lines += ax2.plot(x, y, color="black", linestyle="--", marker="o", markersize=3, label=val)
        ax2.set_ylabel(val)
        ax2.set_ylim(0, 1.02)  # both primary metrics live in [0, 1]
    if not lines:
        _empty(ax, "no loss or validation columns in history")
    else:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.5 on short runs
        ax.set_ylabel("training loss (epoch mean)")
        ax.grid(alpha=0.3)
        # below the axes: inside, it hides curves that fall or rise towards any corner
        fig.legend(lines, [ln.get_label() for ln in lines], loc="outside lower center",
                   ncol=len(lines), fontsize="small")
    ax.set_title(title or "Learning curves")
    return _png(fig)


def w_trajectory(history: pd.DataFrame, title: str | None = None) -> bytes:
    """history: `epoch`, `w` (the loss weight at the end of each epoch, in [0, 1])."""
    _require(history, ["epoch", "w"], "history")
    fig = _figure(8.0, 3.0)
    ax = fig.add_subplot()
    x, y = _by_epoch(history, "w")
    if len(x) == 0:
        _empty(ax, "no w recorded")
    else:
        ax.plot(x, y, marker="." if len(x) < 30 else None, color="tab:purple")
        ax.annotate(f"{y[-1]:.3f}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4), fontsize="small")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("w  (L = (1-w)·L_rec + w·L_cls)")
        ax.grid(alpha=0.3)
    ax.set_ylim(0, 1)  # fixed: trajectories of different runs compare at a glance
    ax.set_title(title or "Loss weight w")
    return _png(fig)


# -- evaluation ---------------------------------------------------------------------
def per_class_ap(per_class: pd.DataFrame, title: str | None = None) -> bytes:
    """per_class: one row per label with `label`, `support`, `ap` (NaN: no positive).
    Bars sorted by AP, best on top; labels without positives at the bottom, marked."""
    _require(per_class, ["label", "support", "ap"], "per_class")
    table = per_class.assign(ap=pd.to_numeric(per_class["ap"], errors="coerce"))
    table = table.sort_values("ap", ascending=True, na_position="first", kind="stable")
    fig = _figure(8.0, max(2.0, 0.3 * len(table) + 1.2))
    ax = fig.add_subplot()
    if table.empty:
        _empty(ax, "no labels")
    else:
        pos = np.arange(len(table))
        ap = table["ap"].to_numpy(dtype=float)
        ax.barh(pos, np.nan_to_num(ap), color="tab:blue")
        for i, v in zip(pos, ap):
            ax.text((0 if np.isnan(v) else v) + 0.01, i, "no positive" if np.isnan(v) else f"{v:.3f}",
                    va="center", fontsize="small")
        ax.set_yticks(pos, [f"{lab} (n={int(s)})" for lab, s in zip(table["label"], table["support"])])
        ax.set_xlim(0, 1.12)  # room for the value text past AP = 1
        ax.set_xlabel("average precision (support n = positives)")
        ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "AP per label")
    return _png(fig)


def pr_curves(y: np.ndarray, scores: np.ndarray, label_names: Sequence[str], title: str | None = None) -> bytes:
    """y: (N, C) 0/1 targets; scores: (N, C); label_names: (C,). One precision-recall
    curve per label that has a positive, its AP in the legend."""
    y, scores = np.asarray(y), np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != scores.shape or y.shape[1] != len(label_names):
        raise ValueError(f"y {y.shape}, scores {scores.shape} and {len(label_names)} label names do not match")
    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    colors = _palette(y.shape[1])
    drawn = 0
    for c, name in enumerate(label_names):
        if not y[:, c].any():
            continue  # precision-recall is undefined without a positive
        precision, recall, _ = precision_recall_curve(y[:, c], scores[:, c])
        ap = average_precision_score(y[:, c], scores[:, c])
        ax.plot(recall, precision, drawstyle="steps-post", color=colors[c], label=f"{name} (AP {ap:.3f})")
        drawn += 1
    if drawn == 0:
        _empty(ax, "no label has a positive example")
    else:
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", ncol=1 + drawn // 25)
    ax.set_title(title or "Precision-recall per label")
    return _png(fig)


def _palette(n: int) -> list:
    """n distinct colours: tab10 up to 10 labels, tab20 up to 20, then a continuous map."""
    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"
    cmap = colormaps[name]
    return [cmap(i) for i in range(n)] if n <= 20 else [cmap(i / max(n - 1, 1)) for i in range(n)]


# -- grid search and label fractions -------------------------------------------------
def metric_vs_w(trials: pd.DataFrame, metric: str, selected: str | None = None, title: str | None = None) -> bytes:
    """trials: one row per trial with `trial`, `w`, `learn_w`, `w_final` and the metric column
    (`metric` or `val_<metric>`). Fixed-w trials as a line over w; learnable-w trials as a
    star at their final w; `selected` (a trial name), when given, ringed."""
    _require(trials, ["trial", "w", "learn_w", "w_final"], "trials")
    col = metric_column(trials, metric, ("val_",))
    learn = _as_bool(trials["learn_w"])
    fixed = trials[~learn].assign(**{col: lambda d: pd.to_numeric(d[col], errors="coerce")}).sort_values("w")
    fig = _figure(8.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(fixed["w"], fixed[col], marker="o", color="tab:blue", label="fixed w (grid search)")
    for _, row in trials[learn].iterrows():
        x, v = float(row["w_final"]), float(row[col])
        ax.plot([x], [v], marker="*", markersize=16, linestyle="none", color="tab:orange",
                label=f"learnable w: {row['trial']}")
        ax.annotate(f"{row['trial']}\nw -> {x:.3f}", (x, v), textcoords="offset points", xytext=(8, -14),
                    fontsize="small", color="tab:orange")
    if selected is not None and (trials["trial"].astype(str) == str(selected)).any():
        row = trials[trials["trial"].astype(str) == str(selected)].iloc[0]
        x = float(row["w_final"]) if _as_bool(pd.Series([row["learn_w"]])).iloc[0] else float(row["w"])
        ax.plot([x], [float(row[col])], marker="o", markersize=18, markerfacecolor="none",
                markeredgecolor="tab:red", markeredgewidth=2, linestyle="none", label=f"selected: {selected}")
    if trials.empty:
        _empty(ax, "no trials")
    else:
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("w (final w for learnable trials)")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    ax.set_title(title or f"{col} vs loss weight w")
    return _png(fig)


def label_fraction_curve(table: pd.DataFrame, metric: str, title: str | None = None) -> bytes:
    """table: rows with `fraction` (labeled fraction of train, 0.01..1), `mode` and the metric
    column (`metric`, `test_<metric>` or `val_<metric>`). One line per mode; repeated
    (mode, fraction) rows (seeds) are averaged, their standard deviation as error bars."""
    _require(table, ["fraction", "mode"], "fractions table")
    col = metric_column(table, metric, ("test_", "val_"))
    data = table.assign(fraction=pd.to_numeric(table["fraction"]), value=pd.to_numeric(table[col], errors="coerce"))
    fig = _figure(8.0, 4.0 + 0.22 * data["mode"].nunique())  # room for the legend below the axes
    ax = fig.add_subplot()
    for mode, rows in data.groupby("mode", sort=True):
        stats = rows.groupby("fraction")["value"].agg(["mean", "std", "count"]).sort_index()
        repeated = stats["count"] > 1  # error bars only where there is a spread to show
        err = stats["std"].where(repeated).fillna(0).to_numpy() if repeated.any() else None
        ax.errorbar(stats.index, stats["mean"], yerr=err, marker="o", capsize=3, label=str(mode))
    if data.empty:
        _empty(ax, "no rows")
    else:
        ax.set_xscale("log")
        ax.set_xlim(0.01 / 1.15, 1.15)  # a margin so points at 1 % and 100 % are not cut
        ax.xaxis.set_major_locator(FixedLocator(FRACTION_TICKS))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_xlabel("labeled fraction of train")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        fig.legend(loc="outside lower center", fontsize="small")  # below: never over a curve
    ax.set_title(title or f"{col} vs labeled fraction")
    return _png(fig)
