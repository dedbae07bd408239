"""`class-folders`: ROOT/<class>/<image> — multi-class datasets (UCM_mcc, AID_mcc, RESISC45,
RSSCN7, OPTIMAL-31). Class names are the folder names, sorted; labels are one-hot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslmae.datasets.layouts.files import index_images, is_image_name
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset, Record


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def detect(root: Path) -> bool:
    dirs = _class_dirs(root)
    return len(dirs) >= 2 and all(any(is_image_name(p) for p in d.iterdir()) for d in dirs)


def read(root: Path, problems: Problems, fetch=None) -> RawDataset:
    dirs = _class_dirs(root)
    if len(dirs) < 2:
        raise DatasetError(f"{root}: class-folders needs at least two class folders, found {len(dirs)}")
    names = [d.name for d in dirs]
    records, owner = [], {}
    for c, d in enumerate(dirs):
        index = index_images(d, problems)
        for stem, path in sorted((k, Path(v)) for k, v in index.items()):
            if stem != path.stem:
                continue  # the index holds both stem and file name
            if stem in owner:  # ids must be unique across classes
                problems.bad(str(path), f"duplicate image name {stem!r} (also in {owner[stem]})", "duplicate_name")
                continue
            owner[stem] = d.name
            vec = np.zeros(len(names), dtype=np.uint8)
            vec[c] = 1
            records.append(Record(image=stem, files=(path,), labels=vec, source=str(path.relative_to(root))))
        for p in sorted(d.iterdir()):
            if p.is_dir():
                problems.warn(str(p), "nested folder ignored (class-folders reads one level)", "ignored")
    return RawDataset(layout="class-folders", task="mcc", label_names=names, records=records)
