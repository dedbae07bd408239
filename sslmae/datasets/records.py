"""What a layout reader yields: label names and one record per image, before decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Record:
    """One image of a source dataset.

    image: id (unique, used as the output file stem);  files: the file(s) holding its pixels
    (one RGB file, or one file per band, red-green-blue order);  labels: (C,) 0/1;
    split: a predefined train/val/test, or None.
    """

    image: str
    files: tuple[Path, ...]
    labels: np.ndarray
    split: str | None = None
    source: str = ""


@dataclass
class RawDataset:
    layout: str
    task: str  # mlc | mcc
    label_names: list[str]
    records: list[Record] = field(default_factory=list)
    # a fixed scaling for 16-bit band files (bigearthnet): DN in [0, band_max] -> [0, 255]
    band_max: float | None = None


@dataclass(frozen=True)
class LabeledImages:
    """A dataset ready for training.

    paths: (N,) image files;  ids: (N,) image ids;  labels: (N, C) uint8 0/1;
    groups: (N,) ids shared by images with identical pixels, or None (not computed);
    predefined: (N,) train/val/test from the source, or None.
    """

    root: Path
    ids: list[str]
    paths: list[Path]
    label_names: list[str]
    labels: np.ndarray
    task: str = "mlc"
    groups: np.ndarray | None = None
    predefined: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)
