"""Training modes: which images a mode trains on and whether it reconstructs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    """What a training mode uses: the unlabeled pool, and the reconstruction term."""

    unlabeled: bool
    reconstruct: bool


MODES: dict[str, Mode] = {
    "semi_supervised": Mode(unlabeled=True, reconstruct=True),
    "supervised": Mode(unlabeled=False, reconstruct=True),
    "supervised_baseline": Mode(unlabeled=False, reconstruct=False),
}
