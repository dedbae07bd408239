"""Dataset sources: local folders and archives (safe extraction). S3: tests/system/test_s3_sources.py."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from sslmae.datasets.sources import SourceError, materialize
from sslmae.datasets.staging import staged as _staged
from tests.support.trees import (
    TREE,
    make_archive,
    make_tar,
    make_zip,
    read_tree,
    tar_link,
    visible,
)

# ---------------------------------------------------------------------------- folders, dispatch

def test_local_folder_is_returned_as_is(tmp_path):
    (tmp_path / "ds").mkdir()
    assert materialize(str(tmp_path / "ds"), tmp_path / "work") == tmp_path / "ds"
    assert not (tmp_path / "work").exists()  # nothing written for a folder


@pytest.mark.parametrize("source, message", [
    ("missing_dir", "no such folder"),
    ("notes.txt", "not a folder"),
    ("missing.zip", "archive not found"),
    ("http://127.0.0.1:9/ds.zip", "cannot download"),  # nothing listens on port 9
    ("https://example.com/data/ds", "must name an archive"),
    ("gs://bucket/ds", "unsupported source"),
    ("s3:///no-bucket", "no bucket"),
])
def test_bad_sources_name_the_source(tmp_path, source, message):
    (tmp_path / "notes.txt").write_text("hello")
    full = source if "://" in source else str(tmp_path / source)
    with pytest.raises(SourceError, match=message) as err:
        materialize(full, tmp_path / "work")
    assert full in str(err.value)


def test_staged_folder_is_removed_when_filling_fails(tmp_path):
    def fill(tmp: Path):
        (tmp / "half.png").write_bytes(b"half")
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        _staged(tmp_path, "ds", fill)
    assert visible(tmp_path) == []


# ---------------------------------------------------------------------------- archives

@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tgz"])
@pytest.mark.parametrize("top", ["ds", None])
def test_archive_is_extracted(tmp_path, suffix, top):
    archive = make_archive(tmp_path / f"ucm{suffix}", TREE, top)
    work = tmp_path / "work"
    root = materialize(str(archive), work)
    assert read_tree(root) == TREE
    # the single top-level folder is the dataset; otherwise the fresh folder itself is
    fresh = root.parent if top else root
    assert fresh.parent == work and fresh.name.startswith("ucm-")
    if top:
        assert root.name == top
    assert visible(work) == [fresh.name]  # no temporary folder left behind


def test_each_extraction_gets_a_fresh_folder(tmp_path):
    archive = make_zip(tmp_path / "ucm.zip", TREE)
    first, second = (materialize(str(archive), tmp_path / "work") for _ in range(2))
    assert first != second and read_tree(first) == read_tree(second) == TREE


def test_two_top_level_folders_are_kept_together(tmp_path):
    tree = {"a/x.txt": b"1", "b/y.txt": b"2"}
    root = materialize(str(make_zip(tmp_path / "two.zip", tree, top=None)), tmp_path / "work")
    assert read_tree(root) == tree


def test_symlink_inside_the_archive_is_kept(tmp_path):
    archive = make_tar(tmp_path / "ucm.tar", TREE,
                       extra=[tar_link("ds/images/d.png", "a.png")])
    root = materialize(str(archive), tmp_path / "work")
    assert (root / "images" / "d.png").is_symlink()
    assert (root / "images" / "d.png").read_bytes() == TREE["images/a.png"]


def _zip_with(path: Path, name: str, data: bytes = b"x", mode: int | None = None) -> Path:
    make_zip(path, TREE)
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.create_system, info.external_attr = 3, mode << 16
        zf.writestr(info, data)
    return path


def _tar_with(path: Path, *extra: tarfile.TarInfo) -> Path:
    return make_tar(path, TREE, extra=list(extra))


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


def _regular(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)  # size 0


UNSAFE = {
    "zip-traversal": (lambda p: _zip_with(p / "bad.zip", "../evil"), "../evil", "'..'"),
    "zip-absolute": (lambda p: _zip_with(p / "bad.zip", "/tmp/evil"), "/tmp/evil", "absolute"),
    "zip-symlink-out": (lambda p: _zip_with(p / "bad.zip", "ds/link", b"../../../etc",
                                            0o120777), "ds/link", "outside"),
    "zip-device": (lambda p: _zip_with(p / "bad.zip", "ds/null", b"", 0o020666),
                   "ds/null", "device"),
    "tar-traversal": (lambda p: _tar_with(p / "bad.tar", _regular("ds/../../evil")),
                      "ds/../../evil", "'..'"),
    "tar-absolute": (lambda p: _tar_with(p / "bad.tar.gz", _regular("/tmp/evil")),
                     "/tmp/evil", "absolute"),
    "tar-symlink-out": (lambda p: _tar_with(p / "bad.tgz", tar_link("ds/link", "../../etc")),
                        "ds/link", "outside"),
    "tar-symlink-absolute": (lambda p: _tar_with(p / "bad.tar", tar_link("ds/link", "/etc")),
                             "ds/link", "absolute"),
    "tar-hardlink-out": (lambda p: _tar_with(
        p / "bad.tar", tar_link("ds/hard", "../etc/passwd", tarfile.LNKTYPE)),
        "ds/hard", "outside"),
    "tar-device": (lambda p: _tar_with(p / "bad.tar", _device("ds/null")), "ds/null", "device"),
    # a symlink to a folder inside, then a file written through it
    "tar-write-through-symlink": (lambda p: _tar_with(
        p / "bad.tar", tar_link("ds/up", "images"), _regular("ds/up/x.png")),
        "ds/up/x.png", "under the symlink member"),
    # each link alone stays inside, chained they escape
    "tar-symlink-chain": (lambda p: _tar_with(
        p / "bad.tar", tar_link("ds/sub/l1", ".."), tar_link("ds/l2", "sub/l1/..")),
        "ds/l2", "through the symlink member"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_members_are_rejected(tmp_path, case):
    build, member, reason = UNSAFE[case]
    (tmp_path / "src").mkdir()
    archive = build(tmp_path / "src")
    work = tmp_path / "deep" / "work"
    with pytest.raises(SourceError, match="refusing to extract") as err:
        materialize(str(archive), work)
    message = str(err.value)
    assert repr(member) in message and reason in message and str(archive) in message
    assert visible(work) == []  # nothing half-extracted
    assert not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _flip_payload(path: Path) -> Path:
    """Corrupt the compressed bytes of the first member (the CRC check must catch it)."""
    data = bytearray(path.read_bytes())
    start = 30 + len("ds/images/a.png")  # local header + name, then the payload
    for i in range(start, start + 6):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CORRUPT = {
    "garbage-zip": lambda p: _write(p / "g.zip", b"not a zip at all"),
    "garbage-tgz": lambda p: _write(p / "g.tgz", b"\x1f\x8b not gzip"),
    "truncated-zip": lambda p: _truncated(make_zip(p / "t.zip", TREE)),
    "truncated-tar.gz": lambda p: _truncated(make_tar(p / "t.tar.gz", TREE)),
    "truncated-tar": lambda p: _truncated(make_tar(p / "t.tar", {"big.bin": os.urandom(50_000)})),
    "damaged-deflate-zip": lambda p: _flip_payload(make_zip(p / "c.zip", TREE)),
    "bad-crc-zip": lambda p: _flip_payload(make_zip(p / "c.zip", TREE,
                                                    compression=zipfile.ZIP_STORED)),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_archives_are_reported(tmp_path, case):
    archive = CORRUPT[case](tmp_path)
    with pytest.raises(SourceError, match="corrupt or truncated") as err:
        materialize(str(archive), tmp_path / "work")
    assert str(archive) in str(err.value) and "\n" not in str(err.value)
    assert visible(tmp_path / "work") == []
