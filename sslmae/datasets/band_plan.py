"""Which reading a dataset gets (data.bands): RGB through Pillow (`rgb`, the default for RGB
sources), or its bands at native radiometry through rasterio (`all`, or a list of band names or
1-based indices; the default for any other GeoTIFF). Decided once per dataset from its first image;
every other image (the unlabeled pool's too) must then have the same bands and dtype.

| data.bands | first image | reading |
|---|---|---|
| auto | RGB, gray or RGBA 8-bit (any format) | rgb |
| auto | a GeoTIFF with another band count, or 16/32-bit | all |
| rgb | anything | rgb (a 12-band TIFF is then a bad item) |
| all / list | a GeoTIFF | those bands, in that order |
| all / list | not a GeoTIFF | error naming the file |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslmae.bands import Bands, BandsError, default_names, rule_of, select
from sslmae.datasets.decode import Decoded, ImageProblem
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.raster import GTIFF, probe, read_raster

RGB_LIKE = (1, 3, 4)  # gray, RGB, RGBA 8-bit: Pillow's reading, as before bands existed


@dataclass(frozen=True)
class BandPlan:
    """bands: what the dataset records (no statistics: those come from the training images);
    indices: (C,) 0-based into the source's bands; source_count: bands every source image has."""

    bands: Bands
    indices: tuple[int, ...]
    source_count: int

    def decode(self, files: tuple[Path, ...], max_pixels: int, min_side: int) -> Decoded:
        """The chosen bands of one image, (C, H, W) at the source dtype."""
        raster = read_raster(files[0], max_pixels, min_side)
        count, dtype = raster.array.shape[0], raster.array.dtype.name
        if count != self.source_count:
            raise ImageProblem(f"{count} band(s), but the dataset's images have {self.source_count}", "band_count")
        if dtype != self.bands.dtype:
            raise ImageProblem(f"dtype {dtype}, but the dataset's images are {self.bands.dtype}", "band_dtype")
        array = raster.array[list(self.indices)]
        _, h, w = array.shape
        return Decoded(None, w, h, count, "bands", GTIFF, [], False, array)


def model_bands(path: Path | bytes, bands: Bands, max_pixels: int, min_side: int = 1) -> np.ndarray:
    """A GeoTIFF (a file, or its bytes) given to a trained model (predict, serve) -> (C, H, W): its bands the model's names
    name, in the model's order (names from the file's band descriptions, else B1..Bn), at the model's
    dtype; anything else one line naming both band lists."""
    raster = read_raster(path, max_pixels, min_side)
    available = default_names(raster.array.shape[0], raster.descriptions)
    missing = [n for n in bands.names if n not in available]
    if missing:
        raise ImageProblem(f"bands {list(available)}, the model needs {list(bands.names)} "
                           f"(missing {', '.join(missing)})", "band_count")
    if raster.array.dtype.name != bands.dtype:
        raise ImageProblem(f"dtype {raster.array.dtype.name}, the model was trained on {bands.dtype}", "band_dtype")
    return raster.array[[available.index(n) for n in bands.names]]


def plan_bands(setting: str | list, first: Path | None, files_per_image: int) -> BandPlan | None:
    """The plan for a dataset whose first image is `first` (None: no images), or None for the RGB
    reading. `files_per_image` > 1: a layout of one file per band (bigearthnet), read as RGB."""
    if setting == "rgb" or first is None:
        return None
    if files_per_image > 1:
        if setting == "auto":
            return None
        raise DatasetError(f"data.bands={rule_of(setting)}: the bigearthnet layout composes B04/B03/B02 only; "
                           "use data.bands=rgb (or auto) with it")
    header = probe(first)
    if setting == "auto":
        if header is None or header.driver != GTIFF or (header.count in RGB_LIKE and header.dtype == "uint8"):
            return None
        setting = "all"
    if header is None or header.driver != GTIFF:
        raise DatasetError(f"{first}: data.bands={rule_of(setting)} reads GeoTIFF bands, "
                           f"but this image is {'not a raster' if header is None else header.driver}")
    available = default_names(header.count, header.descriptions)
    try:
        indices = select(setting, available)
    except BandsError as exc:
        raise DatasetError(f"{first}: {exc}") from None
    bands = Bands(tuple(available[i] for i in indices), header.dtype, rule_of(setting), header.nodata)
    return BandPlan(bands, tuple(indices), header.count)
