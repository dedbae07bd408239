"""From scores to 0/1 predictions, by task: a threshold (mlc) or the argmax (mcc)."""

from __future__ import annotations

import numpy as np


def threshold_decision(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N, C) -> (N, C) uint8: every label whose score reaches the threshold."""
    return (np.asarray(scores) >= threshold).astype(np.uint8)


def argmax_decision(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N, C) -> (N, C) one-hot of the top class (the threshold does not apply)."""
    scores = np.asarray(scores)
    out = np.zeros(scores.shape, dtype=np.uint8)
    out[np.arange(len(scores)), scores.argmax(1)] = 1
    return out


DECISIONS = {"mlc": threshold_decision, "mcc": argmax_decision}
