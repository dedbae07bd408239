"""Per-class decision thresholds tuned on validation (stored with the model for prediction)."""

from __future__ import annotations

import numpy as np

from sslmae.metrics.counts import prf


def tune_thresholds(y: np.ndarray, scores: np.ndarray, default: float = 0.5) -> list[float]:
    """(C,) thresholds maximising each label's F1 on (y, scores) (N, C); a label without
    positives keeps `default`. Candidates: midpoints between consecutive distinct scores."""
    y = np.asarray(y, dtype=bool)
    out = []
    for c in range(y.shape[1]):
        yc, sc = y[:, c], np.asarray(scores[:, c], dtype=np.float64)
        if not yc.any():
            out.append(default)
            continue
        u = np.unique(sc)
        cands = np.r_[(u[:-1] + u[1:]) / 2, default] if len(u) > 1 else np.array([default])
        pred = sc[None, :] >= cands[:, None]  # (T, N)
        tp = (pred & yc).sum(1)
        fp = (pred & ~yc).sum(1)
        fn = (~pred & yc).sum(1)
        f1 = prf(tp, fp, fn)[2]
        best = np.flatnonzero(f1 == f1.max())
        # among equally good thresholds, the one closest to the default
        out.append(float(cands[best[np.argmin(np.abs(cands[best] - default))]]))
    return out
