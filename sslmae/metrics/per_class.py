"""Per-class table: support, AP, precision, recall, F1 for each label."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sslmae.metrics.counts import confusion, prf
from sslmae.metrics.ranking import per_label_ap


def per_class_table(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """y, scores, pred: (N, C). One row per label; AP is NaN for a label with no positive."""
    tp, fp, fn = confusion(y, pred, axis=0)
    p, r, f = prf(tp, fp, fn)
    return pd.DataFrame({
        "label": label_names,
        "support": np.asarray(y).sum(0).astype(int),
        "ap": per_label_ap(np.asarray(y), np.asarray(scores, dtype=np.float64)),
        "precision": p, "recall": r, "f1": f,
    })
