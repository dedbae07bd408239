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


def decision_thresholds(choice: str | float, meta: dict, n: int, task: str) -> tuple[np.ndarray, str]:
    """(C,) thresholds for a model file's decisions, and how they were chosen: its tuned ones
    (`choice` "tuned"; 0.5 where it has none), one fixed number, or none at all (mcc: argmax)."""
    if task == "mcc":  # one class per image: the highest score, no threshold
        return np.full(n, 0.5), "none: multi-class, the highest-scoring class"
    if choice == "tuned":
        tuned = meta.get("thresholds")
        if tuned:
            return np.asarray(tuned, dtype=np.float64), "tuned on validation"
        return np.full(n, 0.5), "0.5 (the model has no tuned thresholds)"
    return np.full(n, float(choice)), str(choice)
