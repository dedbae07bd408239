"""`ingest(source, out)`: any supported layout -> one canonical, validated dataset.

Two formats (`data.format`), one manifest:

    files   OUT/images/<id>.jpg|png   upright 8-bit RGB, native size (an upright RGB JPEG or PNG
                                      is kept byte for byte; everything else is re-encoded as PNG)
            OUT/images/<id>.npy       a dataset with bands (data.bands, sslmae.datasets.band_plan):
                                      (C, H, W) at the source dtype, lossless; the manifest's
                                      metadata records the bands (sslmae.bands.Bands)
    shards  OUT/shards/shard-*.tar    the same stored bytes in WebDataset tar shards of about
                                      `shard_bytes` each (sslmae.datasets.shards), OUT local or
                                      s3://bucket/prefix (each shard uploaded as it closes)
    both    OUT/manifest.parquet      one row per image (schema: MANIFEST_COLUMNS; shards add
                                      offset and size), written last: it marks the dataset whole
            OUT/ingest_report.json    what was chosen, converted, skipped and found identical

Every image is decoded once, a bounded number at a time. Deterministic: the same source gives the
same bytes. A local folder appears whole or not at all (built under a temporary name, then
renamed); an s3:// one is complete once its manifest is there, and an interrupted ingest never
writes one. In the shard format the manifest is written row group by row group as shards close,
so memory does not grow with the images' bytes or the manifest (docs/data.md: what does).
"""

from __future__ import annotations

import hashlib
from array import array
import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sslmae.atomic import atomic_dir
from sslmae.datasets.catalog import match_catalog
from sslmae.datasets.band_plan import BandPlan, plan_bands
from sslmae.datasets.decode import Decoded, ImageProblem, decode, encode_npy, encode_png
from sslmae.datasets.layouts import LAYOUTS, detect_layout
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset, Record
from sslmae.datasets.pool import PoolRule, check_belongs, read_pool
from sslmae.datasets.shards import DEFAULT_SHARD_BYTES, member_json
from sslmae.datasets.sources import materialize, object_fetcher, source_kind
from sslmae.datasets.store import Store
from sslmae.datasets.writers import (MANIFEST, MANIFEST_COLUMNS, POOL_COLUMNS, SHARD_COLUMNS,  # noqa: F401 (re-exported)
                                     FolderWriter, ShardWriter)
from sslmae.outputs import MARKER, OutputError, check_apart, claim_folder, work_dir
from sslmae.progress import Stopwatch, progress

REPORT = "ingest_report.json"
LEGACY = (MANIFEST, REPORT)  # an ingest output older than the marker file
FORMATS = ("files", "shards")
DEFAULT_MAX_PIXELS = 100_000_000  # 10k x 10k: far above any scene tile; stops decompression bombs
DEFAULT_MIN_SIDE = 16


@dataclass
class IngestResult:
    out: Path | str
    layout: str
    n_images: int
    label_names: list[str]
    report: dict


def _decoded(records, band_max: float | None, max_pixels: int, min_side: int, workers: int,
             plan: BandPlan | None = None, rgb_bands: tuple[str, ...] = ()):
    """(record, Decoded | ImageProblem) in record order, at most 4 x workers decoded at once; with a
    band plan, each image's bands at native radiometry."""
    def one(rec: Record):
        try:
            if plan is not None:
                return plan.decode(rec, max_pixels, min_side)
            return decode(rec.band_files(rgb_bands), max_pixels, min_side, band_max if rec.known else None)
        except ImageProblem as exc:
            return exc

    with ThreadPoolExecutor(max(1, workers)) as pool:
        window: deque = deque()
        for rec in records:
            window.append((rec, pool.submit(one, rec)))
            if len(window) >= 4 * max(1, workers):
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def _stored(rec: Record, img: Decoded) -> tuple[str, bytes]:
    """(extension, bytes) kept for an image."""
    if img.array is not None:
        return "npy", encode_npy(img.array)
    if img.passthrough:
        return ("jpg" if img.format == "JPEG" else "png"), rec.files[0].read_bytes()
    return "png", encode_png(img.rgb)


class _Tally:
    """What the report needs, counted as rows go by: label counts, identical pixel content. Pixel
    digests are kept as 16 raw bytes each with their record index (24 bytes per image, no Python
    object per image): ingest's memory must not grow with N beyond that."""

    def __init__(self, label_names: list[str], image_of: Callable[[int], str]):
        self.counts = np.zeros(len(label_names), dtype=np.int64)
        self.digests, self.records = bytearray(), array("q")
        self.image_of, self.n = image_of, 0

    def add(self, row: dict, record: int) -> None:
        self.digests += bytes.fromhex(row["content_sha256"][:32])  # 128 bits: collisions out of reach
        self.records.append(record)
        self.n += 1
        self.counts += np.asarray(row["labels"], dtype=np.int64)

    def identical(self, problems: Problems) -> list[list[str]]:
        """Groups of images with identical pixels (each in record order), in the order of their
        first image."""
        halves = np.frombuffer(bytes(self.digests), dtype=">u8").reshape(-1, 2)
        records = np.frombuffer(self.records, dtype=np.int64)
        order = np.lexsort((records, halves[:, 1], halves[:, 0]))  # by digest, then record
        same_as_prev = np.all(halves[order[1:]] == halves[order[:-1]], axis=1)
        groups, start = [], 0
        for i in range(1, len(order) + 1):
            if i == len(order) or not same_as_prev[i - 1]:
                if i - start > 1:
                    groups.append([int(r) for r in records[order[start:i]]])
                start = i
        same = [[self.image_of(r) for r in g] for g in sorted(groups)]
        for g in same:
            problems.warn(", ".join(g), "identical pixel content (kept; split keeps them on one side)", "identical")
        return same

    def never_positive(self, names: list[str], problems: Problems) -> None:
        never = [n for n, c in zip(names, self.counts) if c == 0]
        if never and problems.on_bad == "error":
            raise DatasetError(f"label(s) never positive: {', '.join(never)} (use --on-bad skip to keep and list them)")
        for n in never:
            problems.warn(n, "label never positive in the ingested images", "never_positive")


def _metadata(raw: RawDataset, catalog: str | None = None, plan: BandPlan | None = None) -> dict[bytes, bytes]:
    """The manifest's key-value metadata. The shard format writes it before the rows, so it has no
    catalog (that needs the count: the report names it) and says its format. A dataset with bands
    records them (sslmae.bands); an RGB one's metadata is as before."""
    meta = {"sslmae.label_names": json.dumps(raw.label_names), "sslmae.task": raw.task, "sslmae.layout": raw.layout}
    if plan is not None:
        meta["sslmae.bands"] = plan.bands.to_json()
    meta.update({"sslmae.catalog": catalog or ""} if catalog is not None else {"sslmae.format": "shards"})
    return {k.encode(): v.encode() for k, v in meta.items()}


def _claim_remote(out: str, remove: bool = True) -> Store:
    """The s3:// prefix, if ingest may write there: empty, or an earlier ingest's output. With
    `remove`, that output goes: its manifest first, so it is never taken for whole meanwhile."""
    store = Store(out)
    names = store.keys()
    if names and MARKER not in names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise OutputError(f"{out}: refusing to write there: it holds files sslmae ingest did not write ({shown}); "
                          "give a new or empty prefix")
    if remove and names:
        if MANIFEST in names:
            store.delete(MANIFEST)
        store.remove()
    return store


def ingest(
    source: str,
    out: str | Path,
    layout: str = "auto",
    on_bad: str = "error",
    s3_endpoint: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    workers: int = 4,
    format: str = "files",
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    unlabeled: list[str] | tuple[str, ...] = (),
    unlabeled_rows: str = "error",
    bands: str | list = "auto",
    log=print,
) -> IngestResult:
    """Ingest SOURCE (folder, archive or s3://bucket/prefix), and the unlabeled sources beside it
    (the pool: sslmae.datasets.pool), into OUT. See the module doc."""
    problems = Problems(on_bad, unlabeled_rows)
    if layout != "auto" and layout not in LAYOUTS:
        raise DatasetError(f"--layout: must be auto or one of {sorted(LAYOUTS)}, got {layout!r}")
    if format not in FORMATS:
        raise DatasetError(f"--format: must be one of {list(FORMATS)}, got {format!r}")
    remote = str(out).startswith("s3://")
    if remote and format != "shards":
        raise DatasetError(f"{out}: only the shard format is written to S3 (--format shards)")
    # before any work: out may be replaced only if an earlier ingest made it, and never holds the source
    took = Stopwatch()
    for pool_source in unlabeled:
        check_belongs(source, pool_source)
    if not remote:
        claim_folder(out, "ingest", LEGACY)
        for src in (source, *unlabeled):
            if source_kind(src) not in ("s3", "url"):
                check_apart(out, src, "ingest")
    else:
        _claim_remote(str(out), remove=False)
    with work_dir("ingest") as work:
        root = materialize(source, Path(work), s3_endpoint)
        chosen = detect_layout(root) if layout == "auto" else layout
        if layout == "auto":
            log(f"layout: {chosen} (detected)")
        raw = LAYOUTS[chosen].read(root, problems, fetch=object_fetcher(Path(work), s3_endpoint))
        if not raw.records and not problems.items:
            raise DatasetError(f"{source}: no images found")
        if unlabeled_rows == "pool" and not problems.pooled:  # said, but nothing to do: a note, not an error
            problems.warn(source, "data.unlabeled_rows is pool, but no row lacks labels", "no_unlabeled_rows")
            log(f"note: data.unlabeled_rows is pool, but no row of {source} lacks labels")
        pool = read_pool(list(unlabeled), Path(work), problems, len(raw.label_names), s3_endpoint)
        first = next(iter(raw.records), None)
        plan = plan_bands(bands, first, raw.rgb_bands)
        if plan is not None:
            log(f"bands: {', '.join(plan.bands.names)} ({plan.bands.dtype}, data.bands={plan.bands.rule})")
        target = _claim_remote(str(out)) if remote else None
        with (atomic_dir(out, "ingest", LEGACY) if not remote else _staging(Path(work))) as tmp:
            report = _write(source, raw, pool, tmp, problems, chosen, on_bad, format, shard_bytes, target,
                            (max_pixels, min_side, workers), plan)
            if remote:
                _publish_remote(tmp, target)
    for item in problems.items:
        log(f"skipped {item['where']}: {item['problem']}")
    n = report["n_images"]
    pooled = f" + {report['pool']['n_images']} unlabeled (the pool)" if "pool" in report else ""
    log(f"ingested {n - (report['pool']['n_images'] if pooled else 0)} images{pooled}, {len(raw.label_names)} labels "
        f"({chosen}) from {source} into {out} in {took}"
        + (f"; skipped {len(problems.items)}, see {out}/{REPORT}" if problems.items else ""))
    return IngestResult(out if remote else Path(out), chosen, n, raw.label_names, report)


def _staging(work: Path):
    import contextlib

    @contextlib.contextmanager
    def folder():
        path = work / "out"
        path.mkdir()
        yield path

    return folder()


def _image_of(parts: list) -> Callable[[int], str]:
    """Row index across `parts` (record lists or RecordTables, in order) -> image id."""
    ends = np.cumsum([len(p) for p in parts])

    def image_of(i: int) -> str:
        k = int(np.searchsorted(ends, i, side="right"))
        part, j = parts[k], i - (int(ends[k - 1]) if k else 0)
        return part.images[j] if hasattr(part, "images") else part[j].image

    return image_of


def _write(source: str, raw: RawDataset, pool: list, tmp: Path, problems: Problems, chosen: str, on_bad: str,
           fmt: str, shard_bytes: int, remote: Store | None, decoding: tuple[int, int, int],
           plan: BandPlan | None = None) -> dict:
    """Every image of `raw`, then of each `pool` table (its rows kept by the pool rule), into `tmp` in
    format `fmt` (with `plan`: the chosen bands of each); the report, also written there."""
    labeled, label_less = _by_knowledge(raw.records)
    pooled = bool(pool) or bool(label_less)
    columns = {**MANIFEST_COLUMNS, **POOL_COLUMNS} if pooled else MANIFEST_COLUMNS
    writer = FolderWriter(tmp, columns) if fmt == "files" else ShardWriter(tmp, shard_bytes, remote,
                                                                             _metadata(raw, plan=plan), columns)
    parts = [p for p in (labeled, label_less, *pool) if len(p)]  # labeled rows first: the pool rule needs them
    tally = _Tally(raw.label_names, _image_of(parts))
    # without a pool, ingest keeps nothing per image beyond what it did
    rule = PoolRule(labeled.images if hasattr(labeled, "images") else [r.image for r in labeled]) if pooled else None
    by_origin = {table.origin: 0 for table in pool}
    try:
        for index, (rec, img) in enumerate(progress(_chain_decoded(parts, raw, decoding, plan), "ingest: decoding",
                                                    total=sum(len(p) for p in parts))):
            if isinstance(img, ImageProblem):
                where = rec.files[0].parent if rec.bands else ", ".join(str(f) for f in rec.files)  # a patch: its folder
                problems.bad(str(where), str(img), img.kind)
                continue
            if not rec.known and not rule.keep(rec.image, img.content_sha256, rec.origin, str(rec.files[0])):
                continue
            for note in img.notes:
                problems.warn(rec.image, note, "converted")
            ext, data = _stored(rec, img)
            positives = [n for n, v in zip(raw.label_names, rec.labels) if v]
            row = {"image": rec.image, "sha256": hashlib.sha256(data).hexdigest(),
                   "content_sha256": img.content_sha256, "width": img.width, "height": img.height,
                   "bands": img.bands, "labels": rec.labels.tolist(), "label_names": positives,
                   "split": rec.split, "source": rec.source}
            if pooled:
                row.update(labeled=rec.known, origin=rec.origin)
            if rule is not None and rec.known:
                rule.add_labeled(rec.image, img.content_sha256)
            elif rule is not None:
                by_origin[rec.origin] = by_origin.get(rec.origin, 0) + 1
            writer.add(row, ext, data, member_json(rec.image, positives if rec.known else None))
            tally.add(row, index)
        n_labeled = tally.n - sum(by_origin.values())
        if not n_labeled:
            raise DatasetError(f"{source}: every image was rejected ({len(problems.items)} problems)")
        tally.never_positive(raw.label_names, problems)
        identical = tally.identical(problems)
        catalog = match_catalog(raw.label_names, n_labeled)
        writer.finish(_metadata(raw, catalog.name if catalog else "", plan))
    except BaseException:
        writer.abort()
        raise
    # no source path in the output: a copy of the same data ingests to the same bytes
    report = {"layout": chosen, "task": raw.task, "on_bad": on_bad, "format": fmt,
              "catalog": catalog.name if catalog else None, "n_images": tally.n, "label_names": raw.label_names,
              "label_counts": dict(zip(raw.label_names, tally.counts.tolist())),
              "skipped": problems.items, "warnings": problems.warnings, "identical": identical}
    if pooled:
        report["pool"] = rule.report(by_origin)
    if plan is not None:
        report["bands"] = {"names": list(plan.bands.names), "dtype": plan.bands.dtype, "rule": plan.bands.rule,
                           "nodata": plan.bands.nodata, "source_bands": plan.source_count}
    if fmt == "files":
        report.pop("format")  # the folder format's report stays byte for byte what it was
    (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _by_knowledge(records) -> tuple:
    """(records whose labels are known, records of the pool): a table's unlabeled rows
    (data.unlabeled_rows: pool) or an ingested dataset's pool, read again. A RecordTable is all known."""
    if hasattr(records, "images"):
        return records, []
    return [r for r in records if r.known], [r for r in records if not r.known]


def _chain_decoded(parts: list, raw: RawDataset, decoding: tuple[int, int, int], plan: BandPlan | None):
    """_decoded over the records of every part in turn."""
    for part in parts:
        yield from _decoded(part, raw.band_max, *decoding, plan=plan, rgb_bands=raw.rgb_bands)


def _publish_remote(tmp: Path, store: Store) -> None:
    """The report and the marker, then the manifest: last, it marks the dataset whole."""
    (tmp / MARKER).write_text(json.dumps({"command": "ingest"}) + "\n", encoding="utf-8")
    for name in (REPORT, MARKER, MANIFEST):
        store.put(tmp / name, name)
