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

A layout of one file per band (bigearthnet) reads RGB under auto when its first patch has only the
red, green and blue bands, else all its bands; a patch then needs a file for each chosen band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslmae.bands import Bands, BandsError, default_names, rule_of, select
from sslmae.datasets.decode import Decoded, ImageProblem
from sslmae.datasets.problems import DatasetError
from sslmae.datasets.raster import GTIFF, header, probe, read_band, read_raster
from sslmae.datasets.records import Record

RGB_LIKE = (1, 3, 4)  # gray, RGB, RGBA 8-bit: Pillow's reading, as before bands existed


@dataclass(frozen=True)
class BandPlan:
    """bands: what the dataset records (no statistics: those come from the training images);
    indices: (C,) 0-based into the source's bands; source_count: bands every source image has (0 for
    a layout of one file per band, whose files are found by band name)."""

    bands: Bands
    indices: tuple[int, ...]
    source_count: int

    def decode(self, rec: Record, max_pixels: int, min_side: int) -> Decoded:
        """The chosen bands of one image, (C, H, W) at the source dtype."""
        if rec.bands:
            return self._decode_band_files(rec, max_pixels, min_side)
        raster = read_raster(rec.files[0], max_pixels, min_side)
        count, dtype = raster.array.shape[0], raster.array.dtype.name
        if count != self.source_count:
            raise ImageProblem(f"{count} band(s), but the dataset's images have {self.source_count}", "band_count")
        if dtype != self.bands.dtype:
            raise ImageProblem(f"dtype {dtype}, but the dataset's images are {self.bands.dtype}", "band_dtype")
        array = raster.array[list(self.indices)]
        _, h, w = array.shape
        return Decoded(None, w, h, count, "bands", GTIFF, [], False, array)

    def _decode_band_files(self, rec: Record, max_pixels: int, min_side: int) -> Decoded:
        """One file per band: each chosen band on the patch's finest grid (its 10 m grid, whichever
        bands are chosen), coarser bands resampled bilinearly; sizes must differ by whole factors."""
        files = rec.band_files(self.bands.names)
        if files is None:
            missing = [n for n in self.bands.names if n not in rec.bands]
            raise ImageProblem(f"missing band file(s) {', '.join(missing)}", "missing_image")
        headers = {name: header(path) for name, path in zip(rec.bands, rec.files)}
        for name, head in headers.items():
            if head.width * head.height > max_pixels:
                raise ImageProblem(f"{name}: too large: {head.width}x{head.height} = {head.width * head.height} "
                                   f"pixels per band > max_pixels {max_pixels}", "too_large")
        h, w = max((head.height, head.width) for head in headers.values())
        if min(h, w) < min_side:
            raise ImageProblem(f"too small: {w}x{h}, each side must be >= {min_side} px", "too_small")
        odd = {n: f"{hd.width}x{hd.height}" for n, hd in headers.items()
               if h % hd.height or w % hd.width or h // hd.height != w // hd.width}
        if odd:
            raise ImageProblem(f"band file sizes {odd} are no whole fraction of the {w}x{h} grid of its finest band "
                               "(no resolution rule explains them)", "band_size")
        wrong = {n: headers[n].dtype for n in self.bands.names if headers[n].dtype != self.bands.dtype}
        if wrong:
            raise ImageProblem(f"band dtype {wrong}, but the dataset's bands are {self.bands.dtype}", "band_dtype")
        array = np.stack([read_band(path, (h, w)) for path in files])
        if self.bands.nodata is not None and bool((array == self.bands.nodata).all()):
            raise ImageProblem(f"every pixel is nodata ({self.bands.nodata:g})", "all_nodata")
        return Decoded(None, w, h, len(rec.bands), "bands", GTIFF, [], False, array)


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


def plan_bands(setting: str | list, first: Record | None, rgb_bands: tuple[str, ...] = ()) -> BandPlan | None:
    """The plan for a dataset whose first record is `first` (None: no images), or None for the RGB
    reading. A layout of one file per band (bigearthnet: `first.bands`, `rgb_bands` its red, green and
    blue) follows the same rule, its band names taken from its files."""
    if setting == "rgb" or first is None:
        return None
    head = probe(first.files[0])
    if first.bands:
        if setting == "auto" and set(first.bands) <= set(rgb_bands):
            return None
        available, count = first.bands, 0
    else:
        if setting == "auto" and (head is None or head.driver != GTIFF or
                                  (head.count in RGB_LIKE and head.dtype == "uint8")):
            return None
        if head is None or head.driver != GTIFF:
            raise DatasetError(f"{first.files[0]}: data.bands={rule_of(setting)} reads GeoTIFF bands, "
                               f"but this image is {'not a raster' if head is None else head.driver}")
        available, count = default_names(head.count, head.descriptions), head.count
    setting = "all" if setting == "auto" else setting
    try:
        indices = select(setting, available)
    except BandsError as exc:
        raise DatasetError(f"{first.files[0]}: {exc}") from None
    dtype = head.dtype if head is not None else "uint16"
    bands = Bands(tuple(available[i] for i in indices), dtype, rule_of(setting), head.nodata if head else None)
    return BandPlan(bands, tuple(indices), count)
