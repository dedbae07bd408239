"""`model.pretrained`: where a run's starting weights come from, fetched into the libraries' caches.

    path/to/file.pth | .safetensors        a local file
    timm | timm:ARCH[.TAG]                 timm's pretrained weights (`timm` alone: the backbone's
                                           default tag); through the Hugging Face cache when timm
                                           publishes them on the Hub (most tags), else its URL
    hf-hub:ORG/NAME[@REVISION][/FILE]      a Hugging Face Hub repo (FILE: model.safetensors, else
                                           pytorch_model.bin); cached in $HF_HOME, HF_HUB_OFFLINE=1
                                           honoured (the cache only)
    s3://BUCKET/KEY                        an object, with the S3 client of every S3 source
    https://HOST/PATH                      a URL; cached in $TORCH_HOME/hub/checkpoints
    rs:NAME                                remote-sensing weights sslmae knows (sslmae.model.published)
    torchgeo:NAME                          TorchGeo's multispectral weights by their TorchGeo name
                                           (ViTSmall16_Weights.SENTINEL2_ALL_MOCO, ..._DINO, ..._MAE):
                                           their bands and scale come with them

`fetch_weights(source, backbone) -> Weights`: the local file, what it is (source, revision), and the
pixel statistics the weights were trained with when the source states them (timm's and a timm Hub
repo's pretrained config, the `rs:` table), else None. Every failure is a WeightsError, one line
naming the source and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (EntryNotFoundError, HFValidationError, LocalEntryNotFoundError,
                                    OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)
from timm.models import get_pretrained_cfg

from sslmae.digest import file_sha256
from sslmae.model.backbone import TIMM_NAMES
from sslmae.model.published import PUBLISHED, TORCHGEO
from sslmae.model.weights_download import WeightsError, fetch_s3, fetch_url
from sslmae.redact import redact

HF_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's and transformers' names, in timm's order
Stats = Optional[tuple[float, float, float]]


@dataclass(frozen=True)
class Weights:
    path: Path  # the local (cached) file
    source: str  # as the user named it, credentials masked
    revision: str | None = None  # Hub commit, S3 / HTTP ETag
    mean: Stats = None  # pixel statistics the weights expect, when the source states them
    std: Stats = None
    bands: tuple[str, ...] | None = None  # multispectral weights: their input channels' bands, in order
    scale: float | None = None  # and the input they expect: DN / scale

    def provenance(self) -> dict[str, str]:
        """What a run records: source, revision, file name and sha256 of the file's bytes."""
        return {"source": redact(self.source), "revision": self.revision or "", "file": self.path.name,
                "sha256": file_sha256(self.path)}


def _stats(cfg) -> tuple[Stats, Stats]:
    mean, std = (cfg or {}).get("mean"), (cfg or {}).get("std")
    return (tuple(mean), tuple(std)) if mean and std and len(mean) == len(std) == 3 else (None, None)


class _NotCached(Exception):
    """Offline and not in the cache."""


def hub_cache_dir() -> str | None:
    """huggingface_hub's cache as the environment says now: the library reads HF_HOME once, at import,
    and a pipeline step sets it later (sslmae.kubeflow.steps.weights_caches). None: the library's."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None


def _hub_download(repo: str, filename: str, revision: str | None, source: str) -> str | None:
    """One file of a Hub repo through huggingface_hub's cache; None when the repo lacks it."""
    try:
        return hf_hub_download(repo, filename, revision=revision, cache_dir=hub_cache_dir())
    except LocalEntryNotFoundError:  # offline (HF_HUB_OFFLINE=1 or no network) and not in the cache
        raise _NotCached() from None
    except EntryNotFoundError:
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise WeightsError(f"model.pretrained: {source}: no such Hub repo or revision ({reason})") from None
    except (OfflineModeIsEnabled, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise WeightsError(f"model.pretrained: {source}: cannot reach the Hugging Face Hub ({reason}); "
                           "pre-stage the weights in HF_HOME and set HF_HUB_OFFLINE=1") from None


def _first_cached(repo: str, names: tuple[str, ...], revision: str | None, source: str) -> str | None:
    """The first of `names` the repo has; offline, the first in the cache (WeightsError when none is)."""
    offline = False
    for name in names:
        try:
            path = _hub_download(repo, name, revision, source)
        except _NotCached:
            offline = True
            continue
        if path:
            return path
    if offline:
        raise WeightsError(
            f"model.pretrained: {source}: {repo} ({' or '.join(names)}) is not in the Hugging Face cache and "
            f"the Hub cannot be reached (offline); where there is internet run `hf download {repo}"
            f"{f' --revision {revision}' if revision else ''}` with the same HF_HOME, then copy that cache here")
    return None


def _snapshot_revision(path: str) -> str | None:
    """The commit a file of the cache belongs to: `.../snapshots/<commit>/<file>`."""
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def from_hub(repo: str, revision: str | None, filename: str | None, source: str) -> Weights:
    path = _first_cached(repo, (filename,) if filename else HF_FILES, revision, source)
    if path is None:
        raise WeightsError(f"model.pretrained: {source}: the repo has none of "
                           f"{', '.join((filename,) if filename else HF_FILES)}; name the file: hf-hub:{repo}/FILE")
    # a timm repo's config.json holds the pixel statistics its weights were trained with
    try:
        config = _hub_download(repo, "config.json", revision, source) if filename is None else None
    except _NotCached:
        config = None
    cfg = json.loads(Path(config).read_text()).get("pretrained_cfg") if config else None
    mean, std = _stats(cfg)
    return Weights(Path(path), source, _snapshot_revision(path), mean, std)


def _hf_hub(source: str, backbone: str) -> Weights:
    rest = source.removeprefix("hf-hub:")
    parts = rest.split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise WeightsError(f"model.pretrained: {source}: expected hf-hub:ORG/NAME[@REVISION][/FILE]")
    name, _, revision = parts[1].partition("@")
    return from_hub(f"{parts[0]}/{name}", revision or None, parts[2] if len(parts) > 2 else None, source)


def _timm(source: str, backbone: str) -> Weights:
    name = source.partition(":")[2]
    if not name:
        if backbone not in TIMM_NAMES:
            raise WeightsError(f"model.pretrained: timm: backbone {backbone!r} is sslmae's own size, with no "
                               f"timm weights; name them (timm:ARCH.TAG) or use one of {sorted(TIMM_NAMES)}")
        name = TIMM_NAMES[backbone]
    try:
        cfg = get_pretrained_cfg(name, allow_unregistered=False)
    except RuntimeError:  # timm's word for an unknown architecture or tag
        cfg = None
    if cfg is None:
        raise WeightsError(f"model.pretrained: {source}: timm has no pretrained weights by that name; "
                           "list them with `timm.list_pretrained()`")
    mean, std = _stats(cfg.to_dict())
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        found = from_hub(repo, revision or None, cfg.hf_hub_filename, source)
        return Weights(found.path, source, found.revision, mean, std)
    if cfg.url:
        path, etag = fetch_url(cfg.url)
        return Weights(path, source, etag, mean, std)
    raise WeightsError(f"model.pretrained: {source}: timm publishes no file for these weights")


def _named(source: str, backbone: str, table: dict, what: str):
    """(entry, local path, ETag) of `source`'s name in `table` (rs: or torchgeo:), fetched by its URL;
    a name the table lacks, or weights of another backbone, is a WeightsError."""
    name = source.partition(":")[2]
    if name not in table:
        raise WeightsError(f"model.pretrained: {source}: unknown {what}; known: {sorted(table)}")
    entry = table[name]
    if backbone != entry.backbone:
        raise WeightsError(f"model.pretrained: {source} fits model.backbone={entry.backbone}, not {backbone}")
    path, etag = fetch_url(entry.url)
    return entry, path, etag


def _rs(source: str, backbone: str) -> Weights:
    entry, path, etag = _named(source, backbone, PUBLISHED, "remote-sensing weights")
    return Weights(path, source, etag, entry.mean, entry.std)


def _torchgeo(source: str, backbone: str) -> Weights:
    entry, path, etag = _named(source, backbone, TORCHGEO, "TorchGeo weights")
    return Weights(path, source, etag, bands=entry.bands, scale=entry.scale)


def _url(source: str, backbone: str) -> Weights:
    path, etag = fetch_url(source)
    return Weights(path, redact(source), etag)


def _s3(source: str, backbone: str) -> Weights:
    path, etag = fetch_s3(source)
    return Weights(path, source, etag)


def _local(source: str, backbone: str) -> Weights:
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: {source}: no such file (sources: a file, timm:ARCH.TAG, "
                           "hf-hub:ORG/NAME, s3://, https://, rs:NAME, torchgeo:NAME)")
    return Weights(path, source)


SCHEMES: dict[str, Callable[[str, str], Weights]] = {
    "timm": _timm, "hf-hub": _hf_hub, "rs": _rs, "torchgeo": _torchgeo, "s3": _s3, "https": _url, "http": _url,
}


def scheme_of(source: str) -> str | None:
    """`timm`, `hf-hub`, ... or None for a local path (a Windows drive letter is not a scheme)."""
    head = source.split("://", 1)[0] if "://" in source else source.split(":", 1)[0]
    return head if head in SCHEMES else None


def fetch_weights(source: str, backbone: str) -> Weights:
    """The weights `source` names as a local file (downloaded into the cache when not there yet).
    backbone: `model.backbone`, for `timm` alone and the `rs:` table's check."""
    scheme = scheme_of(source)
    return SCHEMES[scheme](source, backbone) if scheme else _local(source, backbone)
