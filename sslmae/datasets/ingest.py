"""`ingest(source, out)`: any supported layout -> one canonical, validated dataset folder.

    OUT/images/<id>.jpg|png     upright 8-bit RGB, native size (an upright RGB JPEG or PNG
                                is kept byte for byte; everything else is re-encoded as PNG)
    OUT/manifest.parquet        one row per image (schema: MANIFEST_COLUMNS)
    OUT/ingest_report.json      what was chosen, converted, skipped and found identical

Every image is decoded once. Deterministic: the same source gives the same bytes. The
folder appears whole or not at all (built under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sslmae.atomic import atomic_dir
from sslmae.outputs import check_apart, claim_folder, work_dir
from sslmae.progress import Stopwatch, progress
from sslmae.datasets.catalog import match_catalog
from sslmae.datasets.decode import Decoded, ImageProblem, decode, encode_png
from sslmae.datasets.layouts import LAYOUTS, detect_layout
from sslmae.datasets.problems import DatasetError, Problems
from sslmae.datasets.records import RawDataset, Record
from sslmae.datasets.sources import materialize, object_fetcher, source_kind

MANIFEST = "manifest.parquet"
REPORT = "ingest_report.json"
LEGACY = (MANIFEST, REPORT)  # an ingest output older than the marker file
MANIFEST_COLUMNS = {
    "image": pa.string(),  # id, unique; file stem
    "path": pa.string(),  # relative to the dataset folder
    "sha256": pa.string(),  # of the stored file's bytes
    "content_sha256": pa.string(),  # of the decoded pixels: equal for identical images
    "width": pa.int32(),  # of the source image
    "height": pa.int32(),
    "bands": pa.int32(),  # of the source (e.g. 1 grayscale, 4 RGBA, 3 band files)
    "labels": pa.list_(pa.uint8()),  # (C,) 0/1 in label_names order
    "label_names": pa.list_(pa.string()),  # names of the positive labels
    "split": pa.string(),  # predefined train/val/test, or null
    "source": pa.string(),  # where the pixels came from, relative to the source root
}
DEFAULT_MAX_PIXELS = 100_000_000  # 10k x 10k: far above any scene tile; stops decompression bombs
DEFAULT_MIN_SIDE = 16


@dataclass
class IngestResult:
    out: Path
    layout: str
    n_images: int
    label_names: list[str]
    report: dict


def _decode_one(rec: Record, raw: RawDataset, max_pixels: int, min_side: int):
    try:
        return decode(rec.files, max_pixels, min_side, raw.band_max)
    except ImageProblem as exc:
        return exc


def _stored(rec: Record, img: Decoded) -> tuple[str, bytes]:
    if img.passthrough:
        ext = ".jpg" if img.format == "JPEG" else ".png"
        return f"images/{rec.image}{ext}", rec.files[0].read_bytes()
    return f"images/{rec.image}.png", encode_png(img.rgb)


def _write_manifest(path: Path, rows: list[dict], raw: RawDataset, catalog: str | None) -> None:
    table = pa.Table.from_pylist(rows, schema=pa.schema(MANIFEST_COLUMNS))
    meta = {"sslmae.label_names": json.dumps(raw.label_names), "sslmae.task": raw.task,
            "sslmae.layout": raw.layout, "sslmae.catalog": catalog or ""}
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    pq.write_table(table, path, compression="zstd")


def _identical_groups(rows: list[dict], problems: Problems) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r["content_sha256"], []).append(r["image"])
    same = [g for g in groups.values() if len(g) > 1]
    for g in same:
        problems.warn(", ".join(g), "identical pixel content (kept; split keeps them on one side)", "identical")
    return same


def _never_positive(raw: RawDataset, rows: list[dict], problems: Problems) -> None:
    counts = np.zeros(len(raw.label_names), dtype=np.int64)
    for r in rows:
        counts += np.asarray(r["labels"], dtype=np.int64)
    never = [n for n, c in zip(raw.label_names, counts) if c == 0]
    if never and problems.on_bad == "error":
        raise DatasetError(f"label(s) never positive: {', '.join(never)} (use --on-bad skip to keep and list them)")
    for n in never:
        problems.warn(n, "label never positive in the ingested images", "never_positive")


def ingest(
    source: str,
    out: str | Path,
    layout: str = "auto",
    on_bad: str = "error",
    s3_endpoint: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    workers: int = 4,
    log=print,
) -> IngestResult:
    """Ingest SOURCE (folder, archive or s3://bucket/prefix) into OUT. See the module doc."""
    problems = Problems(on_bad)
    if layout != "auto" and layout not in LAYOUTS:
        raise DatasetError(f"--layout: must be auto or one of {sorted(LAYOUTS)}, got {layout!r}")
    # before any work: out may be replaced only if an earlier ingest made it, and never holds the source
    took = Stopwatch()
    claim_folder(out, "ingest", LEGACY)
    if source_kind(source) != "s3":
        check_apart(out, source, "ingest")
    with work_dir("ingest") as work:
        root = materialize(source, Path(work), s3_endpoint)
        chosen = detect_layout(root) if layout == "auto" else layout
        if layout == "auto":
            log(f"layout: {chosen} (detected)")
        fetch = object_fetcher(Path(work), s3_endpoint)
        raw = LAYOUTS[chosen].read(root, problems, fetch=fetch)
        if not raw.records and not problems.items:
            raise DatasetError(f"{source}: no images found")
        with atomic_dir(out, "ingest", LEGACY) as tmp, ThreadPoolExecutor(max(1, workers)) as pool:
            (tmp / "images").mkdir()
            rows = []
            decoded = pool.map(lambda r: _decode_one(r, raw, max_pixels, min_side), raw.records)
            for rec, img in progress(zip(raw.records, decoded), "ingest: decoding", total=len(raw.records)):
                where = ", ".join(str(f) for f in rec.files)
                if isinstance(img, ImageProblem):
                    problems.bad(where, str(img), img.kind)
                    continue
                for note in img.notes:
                    problems.warn(rec.image, note, "converted")
                rel, data = _stored(rec, img)
                (tmp / rel).write_bytes(data)
                rows.append({
                    "image": rec.image, "path": rel, "sha256": hashlib.sha256(data).hexdigest(),
                    "content_sha256": img.content_sha256, "width": img.width, "height": img.height,
                    "bands": img.bands, "labels": rec.labels.tolist(),
                    "label_names": [n for n, v in zip(raw.label_names, rec.labels) if v],
                    "split": rec.split, "source": rec.source,
                })
            if not rows:
                raise DatasetError(f"{source}: every image was rejected ({len(problems.items)} problems)")
            _never_positive(raw, rows, problems)
            identical = _identical_groups(rows, problems)
            catalog = match_catalog(raw.label_names, len(rows))
            _write_manifest(tmp / MANIFEST, rows, raw, catalog.name if catalog else None)
            # no source path in the output: a copy of the same data ingests to the same bytes
            report = {
                "layout": chosen, "task": raw.task, "on_bad": on_bad,
                "catalog": catalog.name if catalog else None, "n_images": len(rows),
                "label_names": raw.label_names,
                "label_counts": dict(zip(raw.label_names, np.sum([r["labels"] for r in rows], 0).tolist())),
                "skipped": problems.items, "warnings": problems.warnings, "identical": identical,
            }
            (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for item in problems.items:
        log(f"skipped {item['where']}: {item['problem']}")
    log(f"ingested {len(rows)} images, {len(raw.label_names)} labels ({chosen}) from {source} into {out} in {took}"
        + (f"; skipped {len(problems.items)}, see {Path(out) / REPORT}" if problems.items else ""))
    return IngestResult(Path(out), chosen, len(rows), raw.label_names, report)
