"""Archives (.zip, .tar, .tar.gz, .tgz) extracted safely into a fresh folder: every member is
checked first (no absolute paths, no `..`, no links out of the archive or through a link,
no devices), and a corrupt or truncated archive is a SourceError naming it."""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable

from sslmae.datasets.problems import SourceError
from sslmae.datasets.staging import safe_name, staged


def _parts(path: str) -> list[str]:
    """Path components of an archive path, `\\` counted as a separator, `.` and empties dropped."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_absolute(path: str) -> bool:
    return path.replace("\\", "/").startswith("/") or re.match(r"[A-Za-z]:", path) is not None


def _under_link(parts: list[str], links: set[str]) -> str | None:
    """The first proper ancestor of `parts` that is a symlink member, if any."""
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            return "/".join(parts[:i])
    return None


def _member_problem(name: str, kind: str, target: str | None, links: set[str]) -> str | None:
    """Why an archive member is unsafe to extract, or None.

    kind: "file", "dir", "symlink", "hardlink" or "special" (device, fifo);
    target: the link target of a symlink (relative to the link's folder) or of a
    hardlink (relative to the archive root); links: the names of all symlink members.
    No path may go *through* a symlink member, so the lexical checks below are exact.
    """
    if kind == "special":
        return "is a device or other special file"
    if _is_absolute(name):
        return "has an absolute path"
    parts = _parts(name)
    if ".." in parts:
        return "has a '..' path component"
    via = _under_link(parts, links)
    if via is not None:
        return f"lies under the symlink member {via!r}"
    if kind in ("symlink", "hardlink"):
        target = target or ""
        if _is_absolute(target):
            return f"links to the absolute path {target!r}"
        resolved = parts[:-1] if kind == "symlink" else []  # no link among these (checked)
        for part in _parts(target):
            if resolved and "/".join(resolved) in links:
                return f"links through the symlink member {'/'.join(resolved)!r} ({target!r})"
            if part != "..":
                resolved.append(part)
            elif not resolved:
                return f"links outside the archive ({target!r})"
            else:
                resolved.pop()
    return None


def _check_members(label: str, members: list[tuple[str, str, str | None]]) -> None:
    """Raise SourceError naming the first unsafe member of (name, kind, target) triples."""
    links = {"/".join(_parts(n)) for n, kind, _ in members if kind == "symlink"}
    for name, kind, target in members:
        problem = _member_problem(name, kind, target, links)
        if problem:
            raise SourceError(f"{label}: member {name!r} {problem}; refusing to extract")


def _zip_kind(info: zipfile.ZipInfo) -> str:
    """Member kind from the Unix mode bits that zip tools store in `external_attr`."""
    mode = info.external_attr >> 16 if info.create_system == 3 else 0
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special"
    return "dir" if info.is_dir() else "file"


def _extract_zip(path: Path, dest: Path, label: str) -> None:
    """Extract a zip archive into `dest`, after checking every member."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        kinds = [_zip_kind(i) for i in infos]
        targets = [zf.read(i).decode("utf-8") if k == "symlink" else None
                   for i, k in zip(infos, kinds)]
        _check_members(label, [(i.filename, k, t) for i, k, t in zip(infos, kinds, targets)])
        for info, kind, target in zip(infos, kinds, targets):
            if kind == "symlink":  # zipfile would write the target as a text file
                link = dest.joinpath(*_parts(info.filename))
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, link)
            else:
                zf.extract(info, dest)


def _tar_kind(member: tarfile.TarInfo) -> str:
    """Member kind as `_member_problem` names it."""
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdir():
        return "dir"
    return "file" if member.isfile() else "special"


def _extract_tar(path: Path, dest: Path, label: str) -> None:
    """Extract a tar archive (any compression) into `dest`, after checking every member."""
    with tarfile.open(path, "r:*") as tf:
        members = tf.getmembers()
        _check_members(label, [(m.name, _tar_kind(m), m.linkname) for m in members])
        # The stdlib "data" filter (Python >= 3.10.12 / 3.11.4) re-checks at extraction time.
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tf.extractall(dest, members=members, **extra)
        except getattr(tarfile, "FilterError", ()) as exc:  # unsafe, not corrupt
            raise SourceError(f"{label}: member {exc.tarinfo.name!r} is unsafe ({exc}); "
                              "refusing to extract") from exc


# suffix -> extractor; longest suffixes first so `.tar.gz` wins over a shorter match
ARCHIVE_FORMATS: dict[str, Callable[[Path, Path, str], None]] = {
    ".tar.gz": _extract_tar,
    ".tgz": _extract_tar,
    ".tar": _extract_tar,
    ".zip": _extract_zip,
}

# what a corrupt or truncated archive raises while being read
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error,
            UnicodeDecodeError)


def archive_suffix(name: str) -> str | None:
    """The archive suffix of a file name or key (`.zip`, `.tar.gz`, ...), or None."""
    lower = name.lower()
    return next((s for s in ARCHIVE_FORMATS if lower.endswith(s)), None)


def _dataset_root(folder: Path) -> Path:
    """The single top-level folder of an extracted archive, else the folder itself."""
    entries = [p for p in folder.iterdir() if p.name != "__MACOSX"]  # macOS zip metadata
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


def extract_archive(path: Path, workdir: Path, label: str | None = None) -> Path:
    """Safely extract archive `path` into a fresh folder of `workdir`; return the dataset root.

    label: how error messages name the archive (defaults to `path`).
    """
    label = label or str(path)
    suffix = archive_suffix(path.name)
    if suffix is None:
        raise SourceError(f"{label}: not a supported archive ({', '.join(ARCHIVE_FORMATS)})")
    if not path.is_file():
        raise SourceError(f"{label}: archive not found")
    name = safe_name(path.name[: -len(suffix)])
    try:
        final = staged(workdir, name, lambda tmp: ARCHIVE_FORMATS[suffix](path, tmp, label))
    except _CORRUPT as exc:  # other OSErrors (disk full...) are not the source's fault
        detail = " ".join(str(exc).split())  # tarfile's reasons span several lines
        raise SourceError(f"{label}: corrupt or truncated archive ({detail})") from exc
    return _dataset_root(final)
