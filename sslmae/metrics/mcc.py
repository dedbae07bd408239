"""The multi-class suite: accuracy, micro/macro P/R/F1 and macro AUPRC (one-vs-rest)."""

from __future__ import annotations

import numpy as np

from sslmae.metrics.counts import averaged_prf
from sslmae.metrics.decisions import argmax_decision
from sslmae.metrics.ranking import per_label_ap


def mcc_suite(y: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """y: (N, C) one-hot, scores: (N, C) softmax probabilities; the prediction is the argmax
    (`threshold` is unused, kept for a uniform signature)."""
    y = np.asarray(y, dtype=np.uint8)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 2:
        raise ValueError(f"y {y.shape} and scores {scores.shape} must both be (N, C)")
    pred = argmax_decision(scores)
    ap = per_label_ap(y, scores)
    present = ~np.isnan(ap)
    prf = {k: v for k, v in averaged_prf(y, pred).items() if not k.startswith("example_")}
    return {
        "accuracy": float((y.argmax(1) == scores.argmax(1)).mean()),
        "macro_auprc": float(ap[present].mean()) if present.any() else float("nan"),
        "n_samples": int(len(y)),
        "n_labels_absent": int((~present).sum()),
        **prf,
    }
