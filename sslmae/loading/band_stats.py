"""The band statistics of a training run: one pass over its training images (the labeled, hidden-label
and pool sides; never validation or test) as the model sees them, at data.img_size, read from the
decode cache when there is one, else decoded (a shard dataset: through its reader)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sslmae.bands import Bands, StatsPass
from sslmae.datasets.records import LabeledImages
from sslmae.loading.pixels import pixels_for
from sslmae.progress import progress

CHUNK = 256  # images counted together (one bincount per band per chunk)


def training_band_stats(data: LabeledImages, rows: Sequence[int], img_size: int, cache: np.ndarray | None = None,
                        reader=None) -> Bands:
    """data.bands with the statistics of images `rows` (N,) (sslmae.bands.StatsPass)."""
    pixels = pixels_for(data.bands)
    stats = StatsPass(data.bands.count, data.bands.dtype, data.bands.nodata)
    rows = np.sort(np.asarray(rows, dtype=np.int64))  # cache and shard order: sequential reads
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    for chunk in progress(chunks, f"band statistics: {len(rows)} training images (chunks of {CHUNK})"):
        if cache is not None:
            stats.add(cache[chunk])
        else:
            stats.add(np.stack([pixels.decode(reader.image(int(r)) if data.shards is not None else data.paths[r],
                                              img_size) for r in chunk]))
    return data.bands.with_stats(stats.result())
