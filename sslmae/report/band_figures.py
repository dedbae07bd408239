"""Report figures of a dataset's bands (sslmae.bands): a false-colour composite of sample tiles and
per-band histograms. PNG bytes each, drawn as sslmae.report.plots draws (no pyplot)."""

from __future__ import annotations

import numpy as np

from sslmae.bands import Bands, canonical
from sslmae.report.plots import _figure, _png

FALSE_COLOUR = ("B8", "B4", "B3")  # near infrared, red, green: vegetation shows red


def composite_bands(bands: Bands) -> tuple[int, int, int]:
    """The bands shown as red, green, blue: B08/B04/B03 when the data has them, else its first three
    (its only band three times when it has one)."""
    names = [canonical(n) for n in bands.names]
    if all(n in names for n in FALSE_COLOUR):
        return tuple(names.index(n) for n in FALSE_COLOUR)
    return tuple(min(i, bands.count - 1) for i in range(3))


def composite(tiles: np.ndarray, bands: Bands, ids: list[str]) -> bytes:
    """tiles (N, C, H, W) at the source dtype -> one row of false-colour images, each band stretched
    between its training 2 % and 98 % percentiles (as the model's input is)."""
    chosen = composite_bands(bands)
    lo, hi = (np.asarray(v)[list(chosen)].reshape(3, 1, 1) for v in bands.unit_range())
    fig = _figure(2.0 * len(tiles), 2.4)
    axes = fig.subplots(1, len(tiles), squeeze=False)[0]
    for ax, tile, name in zip(axes, tiles, ids):
        rgb = np.clip((tile[list(chosen)].astype(np.float64) - lo) / (hi - lo), 0, 1).transpose(1, 2, 0)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{' / '.join(bands.names[i] for i in chosen)} as red / green / blue", fontsize=9)
    return _png(fig)


def histograms(tiles: np.ndarray, bands: Bands) -> bytes:
    """Per-band value histograms of tiles (N, C, H, W), the training 2 % / 98 % percentiles marked."""
    cols = 4
    rows = -(-bands.count // cols)
    fig = _figure(3.0 * cols, 1.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for b, ax in enumerate(axes):
        if b >= bands.count:
            ax.axis("off")
            continue
        values = tiles[:, b].ravel().astype(np.float64)
        if bands.nodata is not None:
            values = values[values != bands.nodata]
        ax.hist(values, bins=64, color="#4c72b0")
        if bands.stats is not None:
            for x in (bands.stats.p2[b], bands.stats.p98[b]):
                ax.axvline(x, color="#c44e52", linewidth=1)
        ax.set_title(bands.names[b], fontsize=8)
        ax.tick_params(labelsize=6)
    return _png(fig)
