"""Small file trees and the archives made of them, for the dataset-source tests."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

# a tiny dataset in the labels-csv layout
TREE = {
    "images/a.png": b"\x89PNG fake a" * 3,
    "images/b.png": b"\x89PNG fake b" * 5,
    "images/sub/c.png": bytes(range(256)),
    "labels.csv": b"image,cars,trees\na,1,0\nb,0,1\nc,1,1\n",
}


def read_tree(root: Path) -> dict[str, bytes]:
    """{relative posix path: bytes} of every regular file under root."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def make_zip(path: Path, tree: dict[str, bytes], top: str | None = "ds",
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in tree.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_tar(path: Path, tree: dict[str, bytes], top: str | None = "ds",
             extra: list[tarfile.TarInfo] = ()) -> Path:
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tf:
        for name, data in tree.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def make_archive(path: Path, tree: dict[str, bytes], top: str | None = "ds") -> Path:
    return make_zip(path, tree, top) if path.suffix == ".zip" else make_tar(path, tree, top)


def tar_link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info
