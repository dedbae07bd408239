"""Threshold-free metrics on scores: average precision and the ranking-based MLC metrics.

y: (N, C) 0/1;  s: (N, C) scores (higher = more likely). Ties are counted pessimistically
where the definitions require it (coverage, ranking loss), as in scikit-learn.
"""

from __future__ import annotations

import numpy as np


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AP of one label: sum over thresholds of (R_k - R_{k-1}) * P_k (no interpolation).

    y, s: (N,). NaN when the label has no positive.
    """
    y = np.asarray(y, dtype=bool)
    npos = y.sum()
    if npos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # one point per distinct score: tied scores enter together
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last]
    precision = tp / (last + 1)
    recall = tp / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def per_label_ap(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(C,) AP per label; NaN where a label has no positive."""
    return np.asarray([average_precision(y[:, c], s[:, c]) for c in range(y.shape[1])])


def coverage(y: np.ndarray, s: np.ndarray) -> float:
    """How many steps down the ranking, on average, it takes to cover every true label:
    scikit-learn's coverage_error - 1, as the authors report it (src/utils/metrics.py:79), over
    the examples with at least one true label (NaN if none has)."""
    y = np.asarray(y, dtype=bool)
    rows = y.any(1)
    if not rows.any():
        return float("nan")
    worst = np.where(y, s, np.inf).min(1, keepdims=True)  # lowest score among true labels
    cov = (s >= worst).sum(1).astype(float) - 1.0
    return float(cov[rows].mean())


def ranking_loss(y: np.ndarray, s: np.ndarray) -> float:
    """Mean fraction of (true, false) label pairs ordered wrongly (score_false >= score_true)."""
    y = np.asarray(y, dtype=bool)
    losses = []
    for yi, si in zip(y, s):
        pos, neg = si[yi], si[~yi]
        if len(pos) == 0 or len(neg) == 0:
            losses.append(0.0)
            continue
        losses.append(float((neg[None, :] >= pos[:, None]).mean()))
    return float(np.mean(losses))


def one_error(y: np.ndarray, s: np.ndarray) -> float:
    """Fraction of examples whose top-scored label is not a true label, over the examples with
    some but not all labels true (for the others it cannot fail or cannot succeed), as the
    authors count it (src/utils/metrics.py:20-31); NaN if there are none."""
    y = np.asarray(y, dtype=bool)
    rows = y.any(1) & ~y.all(1)
    if not rows.any():
        return float("nan")
    top = np.argmax(s, axis=1)
    return float(1.0 - y[np.arange(len(y)), top][rows].mean())
