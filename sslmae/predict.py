"""`predict(model, input, out)`: per-image probabilities and predicted labels for a folder,
archive or S3 prefix of images.

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
from sslmae.loading.images import load_image
from sslmae.datasets.layouts.files import is_image_name
from sslmae.datasets.sources import materialize
from sslmae.inference import predict_scores
from sslmae.metrics import DECISIONS
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


def _thresholds(choice: str | float, meta: dict, n: int, task: str) -> tuple[np.ndarray, str]:
    if task == "mcc":  # one class per image: the highest score, no threshold
        return np.full(n, 0.5), "none: multi-class, the highest-scoring class"
    if choice == "tuned":
        tuned = meta.get("thresholds")
        if tuned:
            return np.asarray(tuned, dtype=np.float64), "tuned on validation"
        return np.full(n, 0.5), "0.5 (the model has no tuned thresholds)"
    return np.full(n, float(choice)), str(choice)


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


def _decode_all(files: list[Path], root: Path, input_source: str, size: int,
                log) -> tuple[list[torch.Tensor], list[str | None]]:
    imgs, errors = [], []
    for f in progress(files, "predict: decoding"):
        try:
            imgs.append(load_image(f, size))
            errors.append(None)
        except Exception as exc:  # unreadable: reported, not fatal
            origin = _origin(input_source, str(f.relative_to(root)))
            reason = str(exc).replace(str(f), origin)  # never a temporary path the user cannot open
            imgs.append(torch.zeros(3, size, size, dtype=torch.uint8))
            errors.append(f"unreadable image {origin}: {reason}")
            log(f"skipped {origin}: {reason}")
    return imgs, errors


def predict(model_uri: str, input_source: str, out: str | Path, thresholds: str = "tuned",
            batch_size: int = 64, tracking: TrackingConfig | None = None, s3_endpoint: str | None = None, log=print) -> pd.DataFrame:
    out = Path(out)
    if out.suffix not in WRITERS:
        raise ValueError(f"--out: must end in {' or '.join(WRITERS)}, got {out.name}")
    took = Stopwatch()
    out = claim_file(out, "predict", is_predictions)
    thresholds = parse_thresholds(thresholds)
    with work_dir("predict") as work:
        model, mcfg, labels, meta = load_model(resolve_model(model_uri, tracking, Path(work) / "model"))
        root = materialize(input_source, Path(work), s3_endpoint)
        files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_name(p))
        if not files:
            raise ValueError(f"{input_source}: no image files found")
        imgs, errors = _decode_all(files, root, input_source, mcfg.data.img_size, log)
        batches = [(torch.stack(imgs[i:i + batch_size]), torch.zeros(0)) for i in range(0, len(imgs), batch_size)]
        scores, _ = predict_scores(model, batches, desc=f"predict: scoring {len(files)} images (batches)")
    thr, how = _thresholds(thresholds, meta, len(labels), mcfg.data.task)
    pred = DECISIONS[mcfg.data.task](scores, thr)  # per-class thresholds broadcast over rows
    table = pd.DataFrame({"image": [str(f.relative_to(root)) for f in files], "error": errors})
    for j, name in enumerate(labels):
        table[f"prob_{name}"] = np.where(pd.isna(table["error"]), scores[:, j], np.nan)
    table["predicted"] = [";".join(n for n, v in zip(labels, row) if v) if e is None else None
                          for row, e in zip(pred, errors)]
    with atomic_file(out) as tmp:
        WRITERS[out.suffix](table, tmp)
    bad = sum(e is not None for e in errors)
    log(f"wrote {out}: {len(files) - bad} images predicted in {took} (thresholds: {how})"
        + (f", {bad} unreadable (see the error column)" if bad else ""))
    return table
