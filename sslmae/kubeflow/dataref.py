"""The dataset between pipeline steps, by reference: ingest publishes the canonical dataset once
to the run's store under its manifest digest (`<store>/datasets/<sha256 of manifest.parquet>/`),
and the KFP artifact holds only `reference.json` (uri, digest, format, file count, bytes) and the
ingest report. Without a store the artifact is the dataset itself, as before.

- files format (`publish`): a step that reads images fetches the dataset into its scratch folder,
  checks the manifest against the digest and every image against the manifest's sha256, and
  uses it; the pod's scratch goes with the pod.
- shard format (`adopt`): ingest writes the shards straight into the store (under an incoming
  prefix, moved under the digest at the end); no step fetches the dataset: `resolve` gives its
  URI, and trials, evaluation and the promotion gate stream it (sslmae.loading.shard_reader),
  with scratch holding only their bounded cache.

Publishing is idempotent: the manifest is written last, so its presence under the digest means
a whole dataset, and a second run on the same data keeps the copy already there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from sslmae.atomic import write_json
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.store import Store
from sslmae.digest import file_sha256
from sslmae.tracking.lineage import dataset_digest

REFERENCE = "reference.json"
MANIFEST = "manifest.parquet"
REPORT = "ingest_report.json"
COMPLETE = ".sslmae-complete"  # in a fetched copy: every file was fetched and checked


def _files(dataset_dir: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of every image the manifest names."""
    table = pq.read_table(dataset_dir / MANIFEST, columns=["path", "sha256"]).to_pydict()
    return list(zip(table["path"], table["sha256"]))


def publish(dataset_dir: str | Path, store: Store, log=print, workers: int = 8) -> dict:
    """Upload an ingested dataset under its manifest digest (skipped when already there); the
    reference to it."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / MANIFEST).is_file():
        raise DatasetError(f"{dataset_dir}: no {MANIFEST}; only an ingested dataset can be passed by reference")
    digest = dataset_digest(dataset_dir)
    remote = store.child("datasets", digest)
    files = _files(dataset_dir)
    size = sum((dataset_dir / p).stat().st_size for p, _ in files)
    if remote.exists(MANIFEST):
        log(f"dataset {digest[:12]} already in {remote.uri}: nothing uploaded")
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda rel: remote.put(dataset_dir / rel, rel), [p for p, _ in files]))
        if (dataset_dir / REPORT).is_file():
            remote.put(dataset_dir / REPORT, REPORT)
        remote.put(dataset_dir / MANIFEST, MANIFEST)  # last: marks the upload complete
        log(f"dataset {digest[:12]} uploaded to {remote.uri}: {len(files)} images, {size / 1e6:.1f} MB")
    return {"uri": remote.uri, "digest": digest, "images": len(files), "bytes": size}


def adopt(incoming: Store, store: Store, log=print) -> dict:
    """A shard dataset ingested into `incoming` (a folder of `store`) moved under its digest in
    `store` (server-side copies on S3; the manifest last), then `incoming` removed; kept as it is
    when that digest is already there. The reference to it."""
    with tempfile.TemporaryDirectory(prefix="sslmae-adopt-") as tmp:
        if not incoming.get(MANIFEST, Path(tmp) / MANIFEST):
            raise DatasetError(f"{incoming.uri}: no {MANIFEST}: the ingest did not finish")
        digest = file_sha256(Path(tmp) / MANIFEST)
        images = pq.read_metadata(Path(tmp) / MANIFEST).num_rows
    remote = store.child("datasets", digest)
    names = incoming.keys()
    size = sum(incoming.size(n) for n in names)
    if remote.exists(MANIFEST):
        log(f"dataset {digest[:12]} already in {remote.uri}: the new copy removed")
    else:
        for name in sorted(names, key=lambda n: n == MANIFEST):  # the manifest last: it marks the copy whole
            incoming.copy_to(name, remote, name)
        log(f"dataset {digest[:12]} published to {remote.uri}: {images} images in shards, {size / 1e6:.1f} MB")
    incoming.remove()
    return {"uri": remote.uri, "digest": digest, "format": "shards", "images": images, "bytes": size}


def write_reference(artifact_dir: str | Path, ref: dict, dataset_dir: str | Path | None = None) -> None:
    """The step's dataset artifact: reference.json (and the ingest report, for people)."""
    artifact_dir = Path(artifact_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    if dataset_dir is not None and (Path(dataset_dir) / REPORT).is_file():
        shutil.copyfile(Path(dataset_dir) / REPORT, artifact_dir / REPORT)
    write_json(artifact_dir / REFERENCE, ref)


def read_reference(artifact_dir: str | Path) -> dict | None:
    path = Path(artifact_dir) / REFERENCE
    return json.loads(path.read_text()) if path.is_file() else None


def resolve(artifact_dir: str | Path, scratch: str | Path, log=print, workers: int = 8) -> Path | str:
    """The dataset behind a dataset artifact: the artifact itself; a referenced shard dataset's
    URI, streamed where it is; or a referenced folder dataset fetched into
    `scratch/datasets/<digest>` and checked (once per pod)."""
    ref = read_reference(artifact_dir)
    if ref is None:
        return Path(artifact_dir)
    if ref.get("format") == "shards":
        return ref["uri"]
    return fetch(ref, Path(scratch) / "datasets" / ref["digest"], log, workers)


def fetch(ref: dict, dest: Path, log=print, workers: int = 8) -> Path:
    """Download the referenced dataset to `dest` (whole or not at all), checking every file."""
    if (dest / COMPLETE).is_file():
        return dest
    remote = Store(ref["uri"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        if not remote.get(MANIFEST, tmp / MANIFEST):
            raise DatasetError(f"{remote.uri}: no {MANIFEST}: the referenced dataset is not in the store "
                               "(removed, or another store)")
        if file_sha256(tmp / MANIFEST) != ref["digest"]:
            raise DatasetError(f"{remote.uri}/{MANIFEST}: its sha256 is not the digest {ref['digest'][:12]} "
                               "the reference names: the stored dataset was changed")
        files = _files(tmp)

        def one(item: tuple[str, str]) -> None:
            rel, sha = item
            if not remote.get(rel, tmp / rel):
                raise DatasetError(f"{remote.uri}/{rel}: missing from the stored dataset")
            if hashlib.sha256((tmp / rel).read_bytes()).hexdigest() != sha:
                raise DatasetError(f"{remote.uri}/{rel}: its sha256 differs from the manifest's")

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, files))
        remote.get(REPORT, tmp / REPORT)
        (tmp / COMPLETE).write_text(ref["digest"] + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    install(tmp, dest)
    log(f"dataset {ref['digest'][:12]} fetched from {remote.uri}: {len(files)} images")
    return dest


def install(tmp: Path, dest: Path) -> None:
    """Rename the complete folder `tmp` to `dest`; when another process (a parallel trial on the
    same claim) got there first with a complete copy, keep that one."""
    try:
        tmp.rename(dest)
        return
    except OSError:
        pass
    if (dest / COMPLETE).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(dest, ignore_errors=True)  # an incomplete copy: never renamed into place by us
    tmp.rename(dest)
