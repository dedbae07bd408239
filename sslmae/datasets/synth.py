"""The embedded default dataset: the synthetic scenes of `sslmae.datasets.scenes` written in the layout
real datasets use (`labels-csv`): `DIR/images/<stem>.png` and `DIR/labels.csv` with header
`image,<label names>` and 0/1 values, `image` being the file stem; or, with 12 bands, as
Sentinel-2-like GeoTIFFs (`sslmae.datasets.synth_bands`).

Image i depends only on (seed, i), so any subset can be regenerated bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image

from sslmae.atomic import atomic_dir
from sslmae.datasets import synth_bands
from sslmae.datasets.scenes import LABELS, render

POOL = "unlabeled"  # the folder of unlabeled scenes in the dataset folder
POOL_FIRST = 10**9  # the pool's scene indices start here, far from the labeled scenes' 0..n-1


def _write_png(path: Path, seed: int, index: int, size: int) -> dict[str, int]:
    img, labels = render(seed, index, size)
    Image.fromarray(img).save(path.with_suffix(".png"), optimize=False)
    return labels


def _write_tif(path: Path, seed: int, index: int, size: int) -> dict[str, int]:
    dn, labels = synth_bands.render_bands(seed, index, size)
    synth_bands.write_tile(path.with_suffix(".tif"), dn, index)
    return labels


def _kind(bands: int) -> tuple[tuple[str, ...], Callable]:
    """(label names, tile writer) of the set with `bands` bands: 3, RGB PNGs; 12, Sentinel-2-like GeoTIFFs."""
    if bands == 3:
        return LABELS, _write_png
    if bands == 12:
        return LABELS + synth_bands.HIDDEN, _write_tif
    raise ValueError(f"bands: 3 (RGB) or 12 (Sentinel-2-like), got {bands}")


def write_synthetic(out: str | Path, n: int = 600, size: int = 64, seed: int = 0, unlabeled: int = 0,
                    bands: int = 3) -> Path:
    """Write the synthetic dataset to `out` atomically (labels-csv layout) and, with `unlabeled`, that
    many more scenes of the same world without labels in `out`/unlabeled/ (pool<i>: the pool an
    unlabeled source names; the labels-csv layout reads only images/). bands: 3, RGB PNG scenes;
    12, the same scenes as Sentinel-2-like 16-bit GeoTIFFs with two labels only infrared bands show
    (sslmae.datasets.synth_bands). Returns `out`."""
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    if size < 16:
        raise ValueError(f"size: must be >= 16 pixels, got {size}")
    names, write = _kind(bands)
    out = Path(out)
    width = max(4, len(str(n - 1)))
    with atomic_dir(out, "synth") as tmp:
        (tmp / "images").mkdir()
        rows = []
        for i in range(n):
            stem = f"scene{i:0{width}d}"
            labels = write(tmp / "images" / stem, seed, i, size)
            rows.append(",".join([stem] + [str(labels[k]) for k in names]))
        (tmp / "labels.csv").write_text("image," + ",".join(names) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
        if unlabeled:
            (tmp / POOL).mkdir()
            for i in range(unlabeled):  # scene indices of their own: other scenes, the same ones when n grows
                write(tmp / POOL / f"pool{i:0{max(4, len(str(unlabeled - 1)))}d}", seed, POOL_FIRST + i, size)
    return out
