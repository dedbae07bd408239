"""The embedded synthetic dataset as Sentinel-2-like multispectral tiles: 12 bands (BigEarthNet's,
in TorchGeo's order), 16-bit reflectance DN (10000 x reflectance), written as GeoTIFF.

Each scene is the RGB scene of `sslmae.datasets.scenes.render` (its eight visible labels) seen in 12
bands, plus two labels no visible band shows:
- `irrigated`: a soft region whose near-infrared (B05-B8A) rises and short-wave infrared (B11, B12)
  falls, as watered vegetation does, while B02-B04 stay as they were;
- `mineral`: a soft region bright in B11 and B12 only (a clay / iron-oxide signature).
A model that sees all bands can learn them; one that sees RGB only cannot, which is what the quality
check in bench/ measures. Deterministic: tile i depends only on (seed, i).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslmae.datasets.scenes import render

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
HIDDEN = ("irrigated", "mineral")
PRESENCE = {"irrigated": 0.35, "mineral": 0.3}
NODATA = 0  # DN 0 never occurs in a tile: every value is >= 1


def _soft_region(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float weights in [0, 1]: a blurred disc at a random place."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(0.2, 0.8, 2)
    r = rng.uniform(0.18, 0.35)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    return np.clip((r - d) / 0.06 + 0.5, 0.0, 1.0)


def render_bands(seed: int, index: int, size: int) -> tuple[np.ndarray, dict[str, int]]:
    """One tile: (12, size, size) uint16 DN and its 0/1 labels (the 8 visible ones and HIDDEN)."""
    rgb, present = render(seed, index, size)
    rng = np.random.default_rng([seed, index, 12])
    r, g, b = (rgb[..., k].astype(np.float32) / 255.0 for k in range(3))
    green = np.clip(g - 0.5 * (r + b), 0.0, 1.0)  # vegetation: greener than red and blue
    bright = (r + g + b) / 3
    nir = 0.15 + 0.35 * bright + 1.6 * green  # vegetation is bright in the near infrared
    swir = 0.1 + 0.6 * bright - 0.5 * green  # and dark in the short-wave infrared
    water = np.clip(b - 0.5 * (r + g), 0.0, 1.0)
    nir, swir = nir - 0.8 * water, swir - 0.6 * water
    hidden = {}
    for name in HIDDEN:
        hidden[name] = int(rng.random() < PRESENCE[name])
    if hidden["irrigated"]:
        w = _soft_region(rng, size)
        nir, swir = nir + 0.45 * w, swir - 0.25 * w
    if hidden["mineral"]:
        w = _soft_region(rng, size)
        swir = swir + 0.5 * w
    reflectance = {
        "B01": 0.6 * b + 0.05, "B02": b, "B03": g, "B04": r,
        "B05": 0.5 * r + 0.5 * nir, "B06": nir * 0.9, "B07": nir, "B08": nir, "B8A": nir * 1.02,
        "B09": 0.3 * nir + 0.05, "B11": swir, "B12": swir * 0.85,
    }
    noise = rng.normal(0.0, 0.004, (len(BANDS), size, size)).astype(np.float32)
    cube = np.stack([reflectance[name] * 0.4 for name in BANDS]) + noise  # reflectances of 0 .. ~0.5
    dn = np.clip(np.rint(cube * 10000), 1, 65535).astype(np.uint16)
    return dn, {**present, **hidden}


def write_tile(path: Path, dn: np.ndarray, index: int) -> None:
    """A GeoTIFF of `dn` (C, H, W) uint16 with band descriptions, nodata 0 and a 10 m UTM grid."""
    import rasterio
    from affine import Affine  # rasterio's own dependency

    c, h, w = dn.shape
    transform = Affine(10.0, 0.0, 500000.0 + 10.0 * w * (index % 1000), 0.0, -10.0, 5000000.0 - 10.0 * h * (index // 1000))
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="uint16", nodata=NODATA,
                       crs="EPSG:32633", transform=transform, compress="deflate") as dst:
        dst.write(dn)
        dst.descriptions = BANDS
