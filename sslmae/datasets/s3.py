"""S3 sources through boto3: a prefix downloaded into a fresh folder, an archive object
downloaded and extracted, single objects fetched or published. Every botocore problem
becomes a SourceError naming the URL, the endpoint and what to check."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from sslmae.atomic import atomic_file
from sslmae.datasets.archives import _parts, archive_suffix, extract_archive
from sslmae.datasets.problems import SourceError
from sslmae.datasets.staging import safe_name, staged


_DENIED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
           "InvalidToken", "ExpiredToken", "AllAccessDisabled", "InvalidSecurity"}
_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING_KEY = {"NoSuchKey", "404"}


def _s3_client(endpoint: str | None, url: str = "s3://"):
    """A boto3 S3 client; endpoint None lets boto3 read AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    try:
        import boto3  # lazy: only S3 sources need it
        from botocore.config import Config  # comes with boto3
        from botocore.exceptions import BotoCoreError  # comes with boto3
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
    from botocore import exceptions as bx  # boto3 is optional: only S3 sources need it

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
    name = safe_name(_parts(prefix)[-1] if _parts(prefix) else bucket)
    return staged(workdir, name, lambda tmp: _download_all(
        client, bucket, [(key, tmp.joinpath(*parts)) for key, parts in jobs]))


def materialize_s3(url: str, workdir: Path, endpoint: str | None = None) -> Path:
    """Download an S3 prefix (or one archive object) into a fresh folder of `workdir`."""
    bucket, key = _parse_s3(url)
    client = _s3_client(endpoint, url)
    from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3; _s3_client checked it is there

    try:
        if archive_suffix(key):
            return _s3_archive(client, url, bucket, key, workdir)
        return _s3_prefix(client, url, bucket, key, workdir)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, url, client.meta.endpoint_url) from exc


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
        from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3; _s3_client checked it is there

        dest = Path(workdir) / "objects" / safe_name(bucket) / Path(*parts)
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
    from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3; _s3_client checked it is there

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
        with atomic_file(uri) as tmp:
            shutil.copyfile(path, tmp)
        return
    bucket, key = _parse_s3(uri)
    client = _s3_client(endpoint, uri)
    from botocore.exceptions import BotoCoreError, ClientError  # optional, as boto3; _s3_client checked it

    try:
        client.upload_file(str(path), bucket, key)  # S3 objects appear whole: no partial reads
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, uri, client.meta.endpoint_url) from exc
