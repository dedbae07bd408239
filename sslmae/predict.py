"""`predict(model, input, out)`: per-image probabilities and predicted labels for a folder,
archive or S3 prefix of images, or for the images of an ingested dataset (a folder, or a shard
dataset local or on S3: read shard by shard, its shards cached in `cache_dir`), decoded and
scored a batch at a time.

The model is a local model file or a registry URI (`models:/NAME@champion`). Decisions use
the per-class thresholds tuned on validation and stored with the model (`thresholds="tuned"`,
the default; 0.5 where the model has none) or one fixed threshold. An image that cannot be
read is reported in the output's `error` column and on the console, not fatal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from sslmae.atomic import atomic_file
from sslmae.config.schema import TrackingConfig
from sslmae.datasets.load import MANIFEST, load_dataset
from sslmae.datasets.store import Store
from sslmae.datasets.s3 import _s3_client
from sslmae.bands import Bands, check_same
from sslmae.datasets.band_plan import model_bands
from sslmae.datasets.ingest import DEFAULT_MAX_PIXELS as MAX_PIXELS
from sslmae.loading.images import decode_rgb
from sslmae.loading.pixels import pixels_for
from sslmae.loading.loaders import shard_reader
from sslmae.datasets.layouts.files import is_image_name
from sslmae.datasets.sources import materialize
from sslmae.inference import predict_scores
from sslmae.metrics import DECISIONS
from sslmae.metrics.decisions import decision_thresholds
from sslmae.outputs import claim_file, work_dir
from sslmae.progress import Stopwatch, progress
from sslmae.tracking.models import resolve_model
from sslmae.train.model_file import load_model

WRITERS = {".csv": lambda df, p: df.to_csv(p, index=False, float_format="%.6f"),
           ".parquet": lambda df, p: df.to_parquet(p, index=False)}


def parse_thresholds(choice: str) -> str | float:
    """--thresholds: 'tuned' or a number in (0, 1); checked before any work."""
    if choice == "tuned":
        return choice
    try:
        value = float(choice)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise ValueError(f"--thresholds: must be 'tuned' or a number in (0, 1), got {choice!r}")
    return value


def is_predictions(path: Path) -> bool:
    """Did `sslmae predict` write this file? (its image and error columns first)"""
    if path.suffix == ".parquet":
        try:
            return pq.read_schema(path).names[:2] == ["image", "error"]
        except Exception:  # not a parquet file at all
            return False
    with open(path, "rb") as fh:
        return fh.readline().startswith(b"image,error,")


def _origin(input_source: str, rel: str) -> str:
    """Where an image came from, as the user named it (an S3 key, a path in the input)."""
    return f"{input_source.rstrip('/')}/{rel}"


class _Images:
    """The images predict reads: names (what the output's image column says) and, per name, the
    bytes or file to decode and where the user would find it (for error messages). bands: the
    model's (None: 8-bit RGB); an ingested dataset must have them, a GeoTIFF must hold them."""

    def __init__(self, input_source: str, work: Path, s3_endpoint: str | None, cache_dir: str | None,
                 cache_bytes: int, bands: Bands | None = None):
        self.source, self.bands, self.pixels = input_source, bands, pixels_for(bands)
        self.from_dataset = _is_dataset(input_source, s3_endpoint)
        if self.from_dataset:
            data = load_dataset(input_source)
            check_same(data.bands, bands, input_source)
            self.names = list(data.ids)
            reader = shard_reader(data, cache_dir or str(work / "shards"), cache_bytes)
            self._get = reader.image if reader is not None else (lambda i, paths=data.paths: paths[i])
            self._where = (lambda i: f"{input_source.rstrip('/')}#{self.names[i]}")
        else:
            root = materialize(input_source, work, s3_endpoint)
            files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p))
            self.names = [str(f.relative_to(root)) for f in files]
            self._get = files.__getitem__
            self._where = lambda i: _origin(input_source, self.names[i])
        if not self.names:
            raise ValueError(f"{input_source}: no image files found")

    def decode(self, i: int, size: int) -> tuple[torch.Tensor, str | None]:
        """(image (3, size, size) uint8, None), or (zeros, the reason) for an unreadable one; a model
        with bands: (C, size, size) float32 of the source values."""
        data = None
        try:
            data = self._get(i)
            if self.bands is None:
                return torch.from_numpy(decode_rgb(data, size)).permute(2, 0, 1).contiguous(), None
            if self.from_dataset:
                return self.pixels.tensor(self.pixels.decode(data, size)), None
            return self.pixels.tensor(self.pixels.resize(model_bands(data, self.bands, MAX_PIXELS), size)), None
        except Exception as exc:  # unreadable: reported, not fatal
            origin, reason = self._where(i), str(exc)
            if isinstance(data, Path):
                reason = reason.replace(str(data), origin)  # never a temporary path the user cannot open
            blank = torch.zeros(3, size, size, dtype=torch.uint8) if self.bands is None else \
                torch.zeros(self.bands.count, size, size)
            return blank, f"unreadable image {origin}: {reason}"


def _is_dataset(source: str, s3_endpoint: str | None = None) -> bool:
    """An ingested dataset (its manifest at the top), local or on S3 (at `s3_endpoint`, else the
    AWS_* endpoint)."""
    if source.startswith("s3://"):
        return Store(source, _client=_s3_client(s3_endpoint, source) if s3_endpoint else None).exists(MANIFEST)
    return (Path(source) / MANIFEST).is_file()


def _scores(model, images: _Images, size: int, batch_size: int, log) -> tuple[np.ndarray, list[str | None]]:
    """Scores (N, C) of every image, decoded and scored a batch at a time; the errors (N,)."""
    chunks, errors = [], []
    starts = range(0, len(images.names), batch_size)
    for start in progress(starts, f"predict: scoring {len(images.names)} images (batches of {batch_size})"):
        decoded = [images.decode(i, size) for i in range(start, min(start + batch_size, len(images.names)))]
        for (_, error) in decoded:
            if error:
                log(f"skipped {error.removeprefix('unreadable image ')}")
        errors += [e for _, e in decoded]
        scores, _ = predict_scores(model, [(torch.stack([img for img, _ in decoded]), torch.zeros(0))])
        chunks.append(scores)
    return np.concatenate(chunks), errors


def predict(model_uri: str, input_source: str, out: str | Path, thresholds: str = "tuned",
            batch_size: int = 64, tracking: TrackingConfig | None = None, s3_endpoint: str | None = None,
            cache_dir: str | None = None, cache_bytes: int = 8 * 2**30, log=print) -> pd.DataFrame:
    out = Path(out)
    if out.suffix not in WRITERS:
        raise ValueError(f"--out: must end in {' or '.join(WRITERS)}, got {out.name}")
    took = Stopwatch()
    out = claim_file(out, "predict", is_predictions)
    thresholds = parse_thresholds(thresholds)
    with work_dir("predict") as work:
        model, mcfg, labels, meta = load_model(resolve_model(model_uri, tracking, Path(work) / "model"))
        images = _Images(input_source, Path(work), s3_endpoint, cache_dir, cache_bytes, model.bands)
        scores, errors = _scores(model, images, mcfg.data.img_size, batch_size, log)
    thr, how = decision_thresholds(thresholds, meta, len(labels), mcfg.data.task)
    pred = DECISIONS[mcfg.data.task](scores, thr)  # per-class thresholds broadcast over rows
    table = pd.DataFrame({"image": images.names, "error": errors})
    for j, name in enumerate(labels):
        table[f"prob_{name}"] = np.where(pd.isna(table["error"]), scores[:, j], np.nan)
    table["predicted"] = [";".join(n for n, v in zip(labels, row) if v) if e is None else None
                          for row, e in zip(pred, errors)]
    with atomic_file(out) as tmp:
        WRITERS[out.suffix](table, tmp)
    bad = sum(e is not None for e in errors)
    log(f"wrote {out}: {len(images.names) - bad} images predicted in {took} (thresholds: {how})"
        + (f", {bad} unreadable (see the error column)" if bad else ""))
    return table
