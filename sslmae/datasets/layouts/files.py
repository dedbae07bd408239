"""Finding image files: by id (file stem), with duplicate names reported, not guessed."""

from __future__ import annotations

from pathlib import Path

from sslmae.datasets.problems import Problems

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
# label tables and metadata that live beside images: expected, not worth a warning
TEXT_EXTS = (".txt", ".csv", ".json", ".parquet", ".md", ".xlsx", ".mat")


def is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")


def index_images(folder: Path, problems: Problems, recursive: bool = False) -> dict[str, Path]:
    """id (stem and file name) -> path. Two files sharing a stem are a duplicate-name problem:
    the id is left out of the index (so its label row reports a missing image) and listed."""
    found = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
    files = [p for p in found if is_image_name(p)]
    for p in found:
        if not is_image_name(p) and not p.name.startswith(".") and p.suffix.lower() not in TEXT_EXTS:
            problems.warn(str(p), f"not an image file name ({p.suffix or 'no extension'}): ignored", "ignored")
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p)
    index: dict[str, Path] = {}
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.bad(str(paths[0].parent / stem), "duplicate image name: " + ", ".join(str(p) for p in paths),
                         "duplicate_name")
            continue
        index[stem] = paths[0]
        index[paths[0].name] = paths[0]
    return index
