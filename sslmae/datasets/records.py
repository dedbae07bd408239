"""What a layout reader yields: label names and one record per image, before decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslmae.bands import Bands


SOURCE = "source"  # the origin of data.source's images (data.unlabeled[i]'s: sslmae.datasets.pool.origin)


@dataclass(frozen=True)
class Record:
    """One image of a source dataset.

    image: id (unique, used as the output file stem);  files: the file(s) holding its pixels
    (one image file, or one file per band);  bands: the band each of `files` holds, for a layout of
    one file per band (bigearthnet), else ();  labels: (C,) 0/1;
    split: a predefined train/val/test, or None;  known: whether its labels are known (False: an
    image of the unlabeled pool, its labels all 0);  origin: which source it came from
    (sslmae.datasets.pool: "source", or "unlabeled/<i>" for data.unlabeled[i]).
    """

    image: str
    files: tuple[Path, ...]
    labels: np.ndarray
    split: str | None = None
    source: str = ""
    known: bool = True
    origin: str = SOURCE
    bands: tuple[str, ...] = ()

    def band_files(self, names: tuple[str, ...]) -> tuple[Path, ...] | None:
        """The files of bands `names`, in that order (None when one is missing); without named
        bands, `files` itself."""
        if not self.bands:
            return self.files
        if any(n not in self.bands for n in names):
            return None
        return tuple(self.files[self.bands.index(n)] for n in names)


class RecordTable:
    """Records kept column by column (ids, files, labels, sources), the memory of a few strings per
    image rather than objects: a layout reader's output for a large dataset. Iterating it makes
    each Record as it is needed."""

    def __init__(self, root: str, n_labels: int, known: bool = True, origin: str = SOURCE):
        self.root = root  # the source root: every file is given relative to it (its Record's source)
        self.known, self.origin = known, origin  # of every record (Record.known, Record.origin)
        self.images: list[str] = []
        self.files: list[str] = []  # one image file each
        self.splits: list[str | None] = []
        self._labels = bytearray()
        self.n_labels = n_labels

    def append(self, image: str, rel: str, labels: bytes, split: str | None = None) -> None:
        self.images.append(image)
        self.files.append(rel)
        self.splits.append(split)
        self._labels += labels

    def __len__(self) -> int:
        return len(self.images)

    def __bool__(self) -> bool:
        return bool(self.images)

    def __iter__(self):
        labels = np.frombuffer(bytes(self._labels), dtype=np.uint8).reshape(len(self), self.n_labels)
        root = Path(self.root)
        for i, image in enumerate(self.images):
            yield Record(image=image, files=(root / self.files[i],), labels=labels[i], split=self.splits[i],
                         source=self.files[i], known=self.known, origin=self.origin)


@dataclass
class RawDataset:
    layout: str
    task: str  # mlc | mcc
    label_names: list[str]
    records: list[Record] | RecordTable = field(default_factory=list)
    # a fixed scaling for 16-bit band files (bigearthnet): DN in [0, band_max] -> [0, 255]
    band_max: float | None = None
    # a layout of one file per band: the bands RGB is composed of, red, green, blue (Record.bands)
    rgb_bands: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShardIndex:
    """Where each image of a shard dataset lies: `root` the dataset (a folder or s3:// URI),
    `names` (S,) shard files relative to it, `shard` (N,) int index into names, `offset` and `size`
    (N,) int64 bytes in that shard (sslmae.datasets.shards)."""

    root: str
    names: list[str]
    shard: np.ndarray
    offset: np.ndarray
    size: np.ndarray


@dataclass(frozen=True)
class LabeledImages:
    """A dataset ready for training.

    paths: (N,) image files (empty for a shard dataset: see `shards`);  ids: (N,) image ids;
    labels: (N, C) uint8 0/1;  groups: (N,) ids shared by images with identical pixels, or None
    (not computed);  predefined: (N,) train/val/test from the source, or None;  shards: where the
    images lie in a shard dataset, else None;  known: (N,) bool, whether each image's labels are
    known (False: the unlabeled pool, labels all 0), or None where every image's are;  bands: the
    dataset's bands (sslmae.bands; its images are (C, H, W) .npy arrays), or None for 8-bit RGB.
    """

    root: Path | str
    ids: list[str]
    paths: list[Path]
    label_names: list[str]
    labels: np.ndarray
    task: str = "mlc"
    groups: np.ndarray | None = None
    predefined: np.ndarray | None = None
    shards: ShardIndex | None = None
    known: np.ndarray | None = None
    bands: Bands | None = None

    def __len__(self) -> int:
        return len(self.ids)
