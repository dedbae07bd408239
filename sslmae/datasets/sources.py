"""Dataset sources: turn a SOURCE string into a local dataset folder.

A source is one of
  - a local folder                      `data/ucm_mlc`            returned as is;
  - an archive                          `ucm.zip`, `.tar`, `.tar.gz`, `.tgz`
                                        extracted safely into a fresh folder of `workdir`;
  - an S3 prefix                        `s3://bucket/datasets/ucm`
                                        every object under it downloaded into a fresh folder;
  - an archive object on S3             `s3://bucket/datasets/ucm.zip`
                                        downloaded, then extracted like a local archive.

Whatever is written appears whole or not at all: content is written into a hidden
`.NAME.partial-XXXX` folder of `workdir`, renamed to `NAME-XXXX` only once complete.
Problems with the source (missing, corrupt, unsafe, unreachable, refused) raise
`SourceError`, whose message names the source and says what is wrong.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse


class SourceError(ValueError):
    """A dataset source cannot be turned into a folder; the message says which and why."""


# ---------------------------------------------------------------------------- staging

def _safe_name(text: str) -> str:
    """A folder-name-safe version of `text` (the archive stem, the last prefix part)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "dataset"


def _staged(workdir: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Run `fill(tmp)` on a hidden temporary folder of `workdir`; return it renamed to `NAME-XXXX`.

    If `fill` raises (or is interrupted), the temporary folder is removed, so no
    half-written dataset is ever visible under its final name.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f".{name}.partial-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = workdir / f"{name}-{tmp.name[len(prefix):]}"
    os.rename(tmp, final)  # same filesystem: atomic
    return final


# ---------------------------------------------------------------------------- archives

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
    name = _safe_name(path.name[: -len(suffix)])
    try:
        final = _staged(workdir, name, lambda tmp: ARCHIVE_FORMATS[suffix](path, tmp, label))
    except _CORRUPT as exc:  # other OSErrors (disk full...) are not the source's fault
        detail = " ".join(str(exc).split())  # tarfile's reasons span several lines
        raise SourceError(f"{label}: corrupt or truncated archive ({detail})") from exc
    return _dataset_root(final)


# ---------------------------------------------------------------------------- S3

_DENIED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
           "InvalidToken", "ExpiredToken", "AllAccessDisabled", "InvalidSecurity"}
_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING_KEY = {"NoSuchKey", "404"}


def _s3_client(endpoint: str | None, url: str = "s3://"):
    """A boto3 S3 client; endpoint None lets boto3 read AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    try:
        import boto3  # lazy: only S3 sources need it
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError as exc:
        raise SourceError(f"{url}: s3:// sources need boto3 (pip install boto3)") from exc
    # few quick retries: an unreachable endpoint should fail in seconds, not minutes
    config = Config(connect_timeout=5, read_timeout=60,
                    retries={"total_max_attempts": 3, "mode": "standard"})
    try:
        return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise SourceError(f"{url}: cannot set up the S3 client ({exc})") from exc


def _s3_error(exc: Exception, url: str, endpoint: str) -> SourceError:
    """Translate a botocore exception into a SourceError naming the URL and endpoint."""
    from botocore import exceptions as bx

    where = f"{url} (endpoint {endpoint})"
    bucket = urlparse(url).netloc
    if isinstance(exc, bx.NoCredentialsError):
        return SourceError(f"{where}: no credentials found; set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or an AWS profile)")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError,
                        bx.ReadTimeoutError, bx.ConnectionClosedError)):
        return SourceError(f"{where}: cannot reach the S3 endpoint ({exc})")
    if isinstance(exc, bx.ParamValidationError):
        return SourceError(f"{where}: invalid S3 location ({exc})")
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _DENIED:
            return SourceError(f"{where}: access denied ({code}): check the credentials "
                               "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and their "
                               f"permissions on bucket {bucket!r}")
        if code in _MISSING_BUCKET:
            return SourceError(f"{where}: bucket {bucket!r} does not exist")
        if code in _MISSING_KEY:
            return SourceError(f"{where}: no such object in bucket {bucket!r}")
        return SourceError(f"{where}: S3 error {code}: {exc}")
    return SourceError(f"{where}: {exc}")


def _list_keys(client, bucket: str, prefix: str, page_size: int = 1000) -> list[str]:
    """Every key under `prefix`, paginated (one listing call returns at most 1000 keys)."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _relative(key: str, prefix: str, url: str) -> list[str] | None:
    """Path parts of `key` below `prefix` (None for folder markers); refuses escaping keys."""
    rel = key[len(prefix):]
    if rel.endswith("/") or not _parts(rel):
        return None  # a "folder" marker object, nothing to write
    if ".." in _parts(rel):
        raise SourceError(f"{url}: object key {key!r} would be written outside the dataset folder")
    return _parts(rel)


def _check_no_file_folder_clash(url: str, jobs: list[tuple[str, list[str]]]) -> None:
    """S3 allows keys `a` and `a/b` together; a file system cannot hold both."""
    files = {"/".join(parts): key for key, parts in jobs}
    for key, parts in jobs:
        for i in range(1, len(parts)):
            clash = files.get("/".join(parts[:i]))
            if clash is not None:
                raise SourceError(f"{url}: object {clash!r} is also a folder of object "
                                  f"{key!r}; cannot download both")


def _get_object(client, bucket: str, key: str, dest: Path) -> None:
    """Stream one object to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    with open(dest, "wb") as out:
        shutil.copyfileobj(body, out, 1 << 20)


def _download_all(client, bucket: str, jobs: list[tuple[str, Path]], workers: int = 8) -> None:
    """Download (key, dest) pairs in parallel; on the first error cancel the rest and raise."""
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_get_object, client, bucket, key, dest) for key, dest in jobs]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _parse_s3(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parsed = urlparse(url)
    if not parsed.netloc:
        raise SourceError(f"{url}: no bucket in the S3 URL (expected s3://bucket/prefix)")
    return parsed.netloc, parsed.path.lstrip("/")


def _s3_archive(client, url: str, bucket: str, key: str, workdir: Path) -> Path:
    """Download the archive object `key` next to `workdir`, extract it, delete the download."""
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=archive_suffix(key), dir=workdir)
    os.close(fd)
    try:
        _get_object(client, bucket, key, Path(name))
        return extract_archive(Path(name), workdir, label=url)
    finally:
        os.unlink(name)


def _s3_prefix(client, url: str, bucket: str, prefix: str, workdir: Path) -> Path:
    """Download every object under `prefix` into a fresh folder, keys relative to the prefix."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # `s3://b/ds` means the folder ds/, not also ds2/
    jobs = [(key, parts) for key in _list_keys(client, bucket, prefix)
            if (parts := _relative(key, prefix, url)) is not None]
    if not jobs:
        raise SourceError(f"{url} (endpoint {client.meta.endpoint_url}): "
                          f"no objects under prefix {prefix!r} in bucket {bucket!r}")
    _check_no_file_folder_clash(url, jobs)
    name = _safe_name(_parts(prefix)[-1] if _parts(prefix) else bucket)
    return _staged(workdir, name, lambda tmp: _download_all(
        client, bucket, [(key, tmp.joinpath(*parts)) for key, parts in jobs]))


def materialize_s3(url: str, workdir: Path, endpoint: str | None = None) -> Path:
    """Download an S3 prefix (or one archive object) into a fresh folder of `workdir`."""
    bucket, key = _parse_s3(url)
    client = _s3_client(endpoint, url)
    from botocore.exceptions import BotoCoreError, ClientError  # there: _s3_client checked

    try:
        if archive_suffix(key):
            return _s3_archive(client, url, bucket, key, workdir)
        return _s3_prefix(client, url, bucket, key, workdir)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, url, client.meta.endpoint_url) from exc


# ---------------------------------------------------------------------------- dispatch

def _from_folder(source: str, workdir: Path, s3_endpoint: str | None) -> Path:
    """An existing folder, unchanged."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SourceError(f"{source}: not a folder, and not a supported archive "
                          f"({', '.join(ARCHIVE_FORMATS)})")
    raise SourceError(f"{source}: no such folder")


def _from_archive(source: str, workdir: Path, s3_endpoint: str | None) -> Path:
    """A local archive, extracted into a fresh folder of `workdir`."""
    return extract_archive(Path(source).expanduser(), workdir)


def _from_s3(source: str, workdir: Path, s3_endpoint: str | None) -> Path:
    """An S3 prefix or archive object, downloaded into a fresh folder of `workdir`."""
    return materialize_s3(source, workdir, s3_endpoint)


HANDLERS: dict[str, Callable[[str, Path, str | None], Path]] = {
    "folder": _from_folder,
    "archive": _from_archive,
    "s3": _from_s3,
}


def source_kind(source: str) -> str:
    """"s3", "archive" or "folder"; SourceError for a URL scheme nobody handles."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else None
    if scheme == "s3":
        return "s3"
    if scheme is not None:
        raise SourceError(f"{source}: unsupported source (expected a folder, an archive "
                          f"({', '.join(ARCHIVE_FORMATS)}) or s3://bucket/prefix)")
    return "archive" if archive_suffix(source) else "folder"


def materialize(source: str, workdir: Path, s3_endpoint: str | None = None) -> Path:
    """Turn a dataset SOURCE into a local folder and return it.

    source: a local folder (returned as is), an archive (.zip, .tar, .tar.gz, .tgz) or
    `s3://bucket/prefix` (a prefix, or a single archive object); workdir: where archives
    are extracted and downloads land, each in a fresh subfolder; s3_endpoint: the S3 API
    URL, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS's own. Raises SourceError.
    """
    source = str(source)
    if not source.strip():
        raise SourceError("empty dataset source")
    return HANDLERS[source_kind(source)](source, Path(workdir), s3_endpoint)


def object_fetcher(workdir: Path, endpoint: str | None = None) -> Callable[[str], Path]:
    """fetch(`s3://bucket/key`) -> the object downloaded under `workdir`, one client for all
    calls (manifests may name thousands of images on S3). Raises SourceError."""
    clients: list = []

    def fetch(uri: str) -> Path:
        bucket, key = _parse_s3(uri)
        parts = _parts(key)
        if not parts or ".." in parts:
            raise SourceError(f"{uri}: not an object key that can be stored locally")
        if not clients:
            clients.append(_s3_client(endpoint, uri))
        client = clients[0]
        from botocore.exceptions import BotoCoreError, ClientError  # there: _s3_client checked

        dest = Path(workdir) / "objects" / _safe_name(bucket) / Path(*parts)
        try:
            _get_object(client, bucket, key, dest)
        except (BotoCoreError, ClientError) as exc:
            dest.unlink(missing_ok=True)
            raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
        return dest

    return fetch


def fetch_file_if_exists(uri: str, dest: Path, endpoint: str | None = None) -> bool:
    """Copy one file, a local path or `s3://bucket/key`, to `dest`; False when it does not
    exist yet (a first run), SourceError for any other problem."""
    dest = Path(dest)
    if not uri.startswith("s3://"):
        if not Path(uri).is_file():
            return False
        shutil.copyfile(uri, dest)
        return True
    bucket, key = _parse_s3(uri)
    client = _s3_client(endpoint, uri)
    from botocore.exceptions import BotoCoreError, ClientError  # there: _s3_client checked

    try:
        _get_object(client, bucket, key, dest)
    except ClientError as exc:
        dest.unlink(missing_ok=True)
        if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_KEY:
            return False
        raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
    except BotoCoreError as exc:
        raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
    return True


def publish_file(path: Path, uri: str, endpoint: str | None = None) -> None:
    """Write one file to a local path (atomically) or to `s3://bucket/key`."""
    if not uri.startswith("s3://"):
        from sslmae.atomic import atomic_file

        with atomic_file(uri) as tmp:
            shutil.copyfile(path, tmp)
        return
    bucket, key = _parse_s3(uri)
    client = _s3_client(endpoint, uri)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.upload_file(str(path), bucket, key)  # S3 objects appear whole: no partial reads
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
