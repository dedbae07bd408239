"""Dataset sources: turn a SOURCE string into a local dataset folder.

A source is one of
  - a local folder                      `data/ucm_mlc`            returned as is;
  - an archive                          `ucm.zip`, `.tar`, `.tar.gz`, `.tgz`
                                        extracted safely into a fresh folder of `workdir`
                                        (`sslmae.datasets.archives`);
  - an S3 prefix                        `s3://bucket/datasets/ucm`
                                        every object under it downloaded into a fresh folder;
  - an archive object on S3             `s3://bucket/datasets/ucm.zip`
                                        downloaded, then extracted like a local archive
                                        (`sslmae.datasets.s3`);
  - an archive behind an http(s) URL    `https://bucket.s3.amazonaws.com/ucm.zip?X-Amz-Signature=...`
                                        (a presigned URL) downloaded, then extracted
                                        (`sslmae.datasets.http`; the URL is shown masked).

Whatever is written appears whole or not at all (`sslmae.datasets.staging`). Problems with
the source (missing, corrupt, unsafe, unreachable, refused) raise `SourceError`, whose
message names the source and says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sslmae.redact import redact
from sslmae.datasets.archives import ARCHIVE_FORMATS, archive_suffix, extract_archive
from sslmae.datasets.http import materialize_url
from sslmae.datasets.problems import SourceError
from sslmae.datasets.s3 import fetch_file_if_exists, materialize_s3, object_fetcher, publish_file

__all__ = ["SourceError", "fetch_file_if_exists", "materialize", "object_fetcher", "publish_file", "source_kind"]


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


def _from_url(source: str, workdir: Path, s3_endpoint: str | None) -> Path:
    """An archive behind an http(s) URL, downloaded and extracted into a fresh folder of `workdir`."""
    return materialize_url(source, workdir)


HANDLERS: dict[str, Callable[[str, Path, str | None], Path]] = {
    "folder": _from_folder,
    "archive": _from_archive,
    "s3": _from_s3,
    "url": _from_url,
}


def source_kind(source: str) -> str:
    """"s3", "url", "archive" or "folder"; SourceError for a URL scheme nobody handles."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else None
    if scheme == "s3":
        return "s3"
    if scheme in ("http", "https"):
        return "url"
    if scheme is not None:
        raise SourceError(f"{redact(source)}: unsupported source (expected a folder, an archive "
                          f"({', '.join(ARCHIVE_FORMATS)}), s3://bucket/prefix or an http(s) URL of an archive)")
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
