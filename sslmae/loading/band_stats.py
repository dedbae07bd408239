"""The band statistics of a training run: one pass over its training images (the labeled, hidden-label
and pool sides; never validation or test) as the model sees them, at data.img_size, read from the
decode cache when there is one, else decoded (a shard dataset: through its reader).

Beyond `data.band_stats_images` training images the pass takes a seeded sample of that many (of a
shard dataset: the training images of whole shards in a seeded order, so a remote dataset fetches
only those shards): the time to a first training step then stays flat as the pool grows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sslmae.bands import Bands, StatsPass
from sslmae.datasets.records import LabeledImages
from sslmae.loading.pixels import pixels_for
from sslmae.progress import progress

CHUNK = 256  # images counted together (one bincount per band per chunk)


def sample_rows(rows: np.ndarray, cap: int, shard_of: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """`rows` (N,) when N <= cap, else about `cap` of them, sorted: a seeded sample, or (shard_of: (M,)
    the shard of every row of the dataset) all of `rows` in whole shards taken in a seeded order."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if len(rows) <= cap:
        return rows
    rng = np.random.default_rng(seed)
    if shard_of is None:
        return np.sort(rng.choice(rows, cap, replace=False))
    of = shard_of[rows]
    taken, n = [], 0
    for shard in rng.permutation(np.unique(of)):
        taken.append(rows[of == shard])
        n += len(taken[-1])
        if n >= cap:
            break
    return np.sort(np.concatenate(taken))


def training_band_stats(data: LabeledImages, rows: Sequence[int], img_size: int, cache: np.ndarray | None = None,
                        reader=None, cap: int | None = None) -> Bands:
    """data.bands with the statistics of images `rows` (N,) (sslmae.bands.StatsPass); with `cap`, of
    `sample_rows(rows, cap)` of them."""
    pixels = pixels_for(data.bands)
    stats = StatsPass(data.bands.count, data.bands.dtype, data.bands.nodata)
    shard_of = data.shards.shard if data.shards is not None else None
    rows = sample_rows(np.asarray(rows), cap, shard_of) if cap else np.sort(np.asarray(rows, dtype=np.int64))
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    for chunk in progress(chunks, f"band statistics: {len(rows)} training images (chunks of {CHUNK})"):
        if cache is not None:
            stats.add(cache[chunk])
        else:
            stats.add(np.stack([pixels.decode(reader.image(int(r)) if data.shards is not None else data.paths[r],
                                              img_size) for r in chunk]))
    return data.bands.with_stats(stats.result())
