"""Thresholded metrics from 0/1 predictions: micro/macro/example-based P, R, F1.

y, p: (N, C) 0/1. A ratio with a zero denominator counts as 0 (scikit-learn's
zero_division=0), so absent labels pull macro averages down rather than vanish.
"""

from __future__ import annotations

import numpy as np


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def prf(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts (any matching shapes)."""
    p = _ratio(tp, tp + fp)
    r = _ratio(tp, tp + fn)
    f = _ratio(2 * tp, 2 * tp + fp + fn)
    return p, r, f


def confusion(y: np.ndarray, p: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tp, fp, fn summed along `axis` (0: per label, 1: per example)."""
    y, p = np.asarray(y, bool), np.asarray(p, bool)
    return (y & p).sum(axis), (~y & p).sum(axis), (y & ~p).sum(axis)


def averaged_prf(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """micro_*, macro_* and example_* precision / recall / f1."""
    out: dict[str, float] = {}
    tp, fp, fn = confusion(y, p, axis=0)
    for name, (pp, rr, ff) in {"micro": prf(tp.sum(), fp.sum(), fn.sum()), "macro": prf(tp, fp, fn)}.items():
        out.update({f"{name}_precision": float(np.mean(pp)), f"{name}_recall": float(np.mean(rr)),
                    f"{name}_f1": float(np.mean(ff))})
    tp, fp, fn = confusion(y, p, axis=1)
    pp, rr, ff = prf(tp, fp, fn)
    out.update({"example_precision": float(pp.mean()), "example_recall": float(rr.mean()),
                "example_f1": float(ff.mean())})
    return out
