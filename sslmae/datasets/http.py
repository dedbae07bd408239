"""An archive behind an http(s) URL (a presigned S3, Azure SAS or GCS signed URL, or any web
server): downloaded into `workdir` with the standard library, then extracted like a local
archive. The URL's query string is kept for the request and masked wherever it is shown
(sslmae.redact)."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from sslmae.redact import redact
from sslmae.datasets.archives import ARCHIVE_FORMATS, archive_suffix, extract_archive
from sslmae.datasets.problems import SourceError

TIMEOUT_S = 60  # per socket operation, not for the whole download


def materialize_url(url: str, workdir: Path) -> Path:
    """Download the archive at `url` next to `workdir`, extract it, delete the download; the
    dataset root."""
    shown = redact(url)
    suffix = archive_suffix(urlsplit(url).path)
    if suffix is None:
        raise SourceError(f"{shown}: an http(s) source must name an archive ({', '.join(ARCHIVE_FORMATS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=suffix, dir=workdir)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
        return extract_archive(Path(name), workdir, label=shown)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{shown}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{shown}: cannot download: {redact(str(reason))}") from None
    finally:
        Path(name).unlink(missing_ok=True)
