"""Weights files behind `https://` and `s3://`, cached where torch caches downloaded checkpoints.

Cache: `torch.hub.get_dir()/checkpoints` ($TORCH_HOME/hub/checkpoints), one file per location,
`sslmae-<12 hex of the location>-<file name>`, with a `.json` beside it holding the ETag. A
URL's cached file is used as it is, as `torch.hub.load_state_dict_from_url` does (no request);
an S3 object is checked with one HEAD request and fetched again when its ETag changed.
Downloads go to a temporary name and are renamed whole (sslmae.atomic).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import torch

from sslmae.atomic import atomic_file
from sslmae.datasets.s3 import _get_object, _parse_s3, _s3_client, _s3_error
from sslmae.redact import redact

TIMEOUT_S = 60  # per socket operation, not for the whole download


class WeightsError(ValueError):
    """`model.pretrained` names weights that cannot be had; the message names the source and the way out."""


def cache_dir() -> Path:
    """Where torch keeps downloaded checkpoints ($TORCH_HOME/hub/checkpoints), read at call time."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(location: str) -> Path:
    """The cache file of a URL or S3 object (the query string, e.g. a presigned signature, left out)."""
    parts = urlsplit(location)
    plain = f"{parts.scheme}://{parts.netloc}{parts.path}"
    name = Path(parts.path).name or "weights"
    return cache_dir() / f"sslmae-{hashlib.sha256(plain.encode()).hexdigest()[:12]}-{name}"


def _etag_of(path: Path) -> str | None:
    side = path.with_name(path.name + ".json")
    return json.loads(side.read_text()).get("etag") if side.is_file() else None


def _keep(path: Path, etag: str | None) -> None:
    with atomic_file(path.with_name(path.name + ".json")) as tmp:
        Path(tmp).write_text(json.dumps({"etag": etag}))


def fetch_url(url: str) -> tuple[Path, str | None]:
    """-> (cached file, its ETag when the server sent one). Downloads only when not cached."""
    path, shown = cached_path(url), redact(url)
    if path.is_file():
        return path, _etag_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path) as tmp, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            etag = response.headers.get("ETag")
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"model.pretrained: {shown}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = redact(str(getattr(exc, "reason", exc)))
        raise WeightsError(f"model.pretrained: {shown}: cannot download ({reason}); without internet, "
                           f"copy the file to {path} or name a local file") from None
    _keep(path, etag)
    return path, etag


def fetch_s3(url: str) -> tuple[Path, str]:
    """-> (cached file, the object's ETag). The client, keys and endpoint as every S3 source
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3)."""
    bucket, key = _parse_s3(url)
    client = _s3_client(None, url)
    from botocore.exceptions import BotoCoreError, ClientError  # comes with boto3, which _s3_client checked

    path = cached_path(url)
    try:
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
        if not (path.is_file() and _etag_of(path) == etag):
            with atomic_file(path) as tmp:
                _get_object(client, bucket, key, Path(tmp))
            _keep(path, etag)
    except (BotoCoreError, ClientError) as exc:
        raise WeightsError(f"model.pretrained: {_s3_error(exc, url, client.meta.endpoint_url)}") from None
    return path, etag
