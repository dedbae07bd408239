"""The multi-label suite: the paper's metrics, from scores and a decision threshold."""

from __future__ import annotations

import numpy as np

from sslmae.metrics.counts import averaged_prf
from sslmae.metrics.decisions import threshold_decision
from sslmae.metrics.ranking import coverage, one_error, per_label_ap, ranking_loss


def mlc_suite(y: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """y: (N, C) 0/1, scores: (N, C) probabilities. Labels with no positive in `y` are left
    out of the AUPRC averages (AP is undefined for them) and counted in `n_labels_absent`."""
    y = np.asarray(y, dtype=np.uint8)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 2:
        raise ValueError(f"y {y.shape} and scores {scores.shape} must both be (N, C)")
    pred = threshold_decision(scores, threshold).astype(bool)
    ap = per_label_ap(y, scores)
    present = ~np.isnan(ap)
    support = y.sum(0)
    out = {
        "macro_auprc": float(ap[present].mean()) if present.any() else float("nan"),
        "weighted_auprc": float(np.average(ap[present], weights=support[present])) if present.any() else float("nan"),
        "ranking_loss": ranking_loss(y, scores),
        "one_error": one_error(y, scores),
        "coverage": coverage(y, scores),
        "subset_accuracy": float((pred == y.astype(bool)).all(1).mean()),
        "hamming_loss": float((pred != y.astype(bool)).mean()),
        "n_samples": int(len(y)),
        "n_labels_absent": int((~present).sum()),
    }
    out.update(averaged_prf(y, pred))
    return out
