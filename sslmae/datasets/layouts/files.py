"""Finding image files: by id (file stem), with duplicate names reported, not guessed."""

from __future__ import annotations

import os
from pathlib import Path

from sslmae.datasets.problems import Problems

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
# label tables and metadata that live beside images: expected, not worth a warning
TEXT_EXTS = (".txt", ".csv", ".json", ".parquet", ".md", ".xlsx", ".mat")


def is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")


def index_images(folder: Path, problems: Problems, recursive: bool = False, root: Path | None = None) -> dict[str, str]:
    """id (the file's stem) -> path (a string: a few bytes per image, not a Path object); relative
    to `root` when given (the form records keep, so index and records share one string). Two files
    sharing a stem are a duplicate-name problem: the id is left out of the index (so its label row
    reports a missing image) and listed."""
    index: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    cut = len(os.path.join(os.path.abspath(root), "")) if root is not None else 0
    listed = _files(os.path.abspath(folder) if root is not None else str(folder), recursive)
    for path in sorted(p[cut:] for p in listed):  # cut as listed: the sorted list and the index share strings
        name = os.path.basename(path)
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in IMAGE_EXTS or name.startswith("."):
            if not name.startswith(".") and suffix.lower() not in TEXT_EXTS:
                shown = os.path.join(root, path) if root is not None else path
                problems.warn(shown, f"not an image file name ({suffix or 'no extension'}): ignored", "ignored")
            continue
        if stem in duplicates:
            duplicates[stem].append(path)
        elif stem in index:
            duplicates[stem] = [index.pop(stem), path]
        else:
            index[stem] = path
    for stem, paths in duplicates.items():
        shown = [os.path.join(root, p) for p in paths] if root is not None else paths
        problems.bad(os.path.join(os.path.dirname(shown[0]), stem), "duplicate image name: " + ", ".join(shown),
                     "duplicate_name")
    return index


def _files(folder: str, recursive: bool):
    """Every regular file under `folder` (one level, or all), as path strings."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file():
                yield entry.path
            elif recursive and entry.is_dir():
                yield from _files(entry.path, True)
