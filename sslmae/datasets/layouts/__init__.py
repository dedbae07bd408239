"""Source layouts: a registry of readers, each `detect(root) -> bool` and
`read(root, problems) -> RawDataset`; `detect_layout` picks the first that matches."""

from __future__ import annotations

from pathlib import Path

from sslmae.datasets.layouts import bigearthnet, class_folders, labels_csv, manifest, ucm_txt
from sslmae.datasets.problems import DatasetError

# detection order: the most specific evidence first (class folders match almost anything)
LAYOUTS = {
    "manifest": manifest,
    "labels-csv": labels_csv,
    "ucm-txt": ucm_txt,
    "bigearthnet": bigearthnet,
    "class-folders": class_folders,
}


def detect_layout(root: Path) -> str:
    for name, layout in LAYOUTS.items():
        if layout.detect(root):
            return name
    raise DatasetError(
        f"{root}: cannot tell the layout (looked for: manifest.csv/.parquet, labels.csv + images/, "
        f"LandUse_Multilabeled.txt, */*_labels_metadata.json, one folder per class); pass --layout"
    )
