"""The report's "Bands" section, for a model trained on a dataset's bands (sslmae.bands): the bands and
their training statistics (what the model normalises with), and, with the dataset, a false-colour
composite and per-band histograms of sample tiles. An RGB model has no such section."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sslmae.bands import Bands, read_model_bands
from sslmae.datasets.load import load_dataset
from sslmae.datasets.records import LabeledImages
from sslmae.loading.loaders import shard_reader
from sslmae.loading.pixels import pixels_for
from sslmae.report import band_figures, markup

SAMPLES = 6  # tiles shown, the dataset's first in manifest order


def _stats_table(bands: Bands) -> pd.DataFrame:
    s = bands.stats
    table = pd.DataFrame({"band": list(bands.names)})
    if s is not None:
        table = table.assign(mean=s.mean, std=s.std, p2=s.p2, p98=s.p98, nodata_pixels=list(s.nodata))
    return table


def _samples(data: LabeledImages) -> tuple[np.ndarray, list[str]]:
    """(tiles (N, C, H, W) at their stored size, ids) of the dataset's first images (a remote shard
    dataset's first shard through a temporary cache)."""
    pixels = pixels_for(data.bands)
    rows = range(min(SAMPLES, len(data.ids)))
    with tempfile.TemporaryDirectory(prefix="sslmae-report-") as cache:
        reader = shard_reader(data, cache, 2**30)
        arrays = [np.load(data.paths[i] if reader is None else io.BytesIO(reader.image(i)), allow_pickle=False)
                  for i in rows]
    side = min(min(a.shape[1:]) for a in arrays)
    tiles = np.stack([pixels.resize(a, side) for a in arrays])
    return tiles, [data.ids[i] for i in rows]


def bands_section(model_path: Path | None, dataset: Path | str | None) -> str | None:
    """The section's HTML, or None when the model is RGB (or there is no model file)."""
    if model_path is None or not Path(model_path).is_file():
        return None
    bands = read_model_bands(model_path)
    if bands is None:
        return None
    body = markup.kv_table({"bands": ", ".join(bands.names), "dtype": bands.dtype, "data.bands": bands.rule,
                            "nodata": bands.nodata, "model input": f"DN / {bands.scale:g}" if bands.scale else
                            "each band stretched between its training 2 % and 98 % percentiles, clipped, "
                            "then normalised with the stretched mean and std"})
    body += markup.table(_stats_table(bands)) + markup.source(model_path)
    if dataset is None:
        body += markup.note("no dataset given (--dataset): sample tiles and histograms skipped")
    else:
        data = load_dataset(dataset)
        if data.bands is None or data.bands.names != bands.names:
            body += markup.note(f"{dataset} does not have the model's bands: sample tiles skipped")
        else:
            tiles, ids = _samples(data)
            body += markup.img(band_figures.composite(tiles, bands, ids), "false-colour composite of sample tiles")
            body += markup.img(band_figures.histograms(tiles, bands), "per-band histograms of sample tiles")
            body += markup.source(dataset)
    return markup.section("Bands", body, "bands")
