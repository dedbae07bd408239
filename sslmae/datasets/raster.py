"""Read a multi-band raster (GeoTIFF / Cloud-Optimized GeoTIFF) at its native radiometry with
rasterio (its wheels bundle GDAL, so no system library is needed): any band count, uint8 /
uint16 / int16 / float32, nodata and band descriptions as the file states them.

| input | rule |
|---|---|
| not a GeoTIFF (a JPEG or PNG renamed .tif, text, empty) | bad item, naming the driver found |
| more than `max_pixels` pixels per band (the header says so) | bad item, before any band is read |
| smaller than `min_side` px on a side | bad item |
| a dtype outside uint8, uint16, int16, float32 | bad item |
| NaN or inf in a float raster | bad item |
| every pixel nodata | bad item |
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslmae.bands import DTYPES
from sslmae.datasets.decode import ImageProblem

GTIFF = "GTiff"  # rasterio's driver name for GeoTIFF and COG


@dataclass
class Raster:
    """array: (C, H, W) at the source dtype; descriptions: (C,) the file's band names or None each;
    nodata: the file's nodata value, or None."""

    array: np.ndarray
    descriptions: tuple[str | None, ...]
    nodata: float | None


@contextlib.contextmanager
def _open(source: Path | bytes):
    """The raster dataset of a file, or of bytes a request sent (GDAL's in-memory file)."""
    import rasterio  # late: RGB users never load GDAL
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.io import MemoryFile

    in_memory = isinstance(source, (bytes, bytearray))
    if (len(source) if in_memory else source.stat().st_size) == 0:
        raise ImageProblem("empty file", "empty")
    with contextlib.ExitStack() as stack:
        try:
            with warnings.catch_warnings():  # a tile need not be georeferenced to be learned from
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                ds = stack.enter_context(stack.enter_context(MemoryFile(bytes(source))).open() if in_memory
                                         else rasterio.open(source))
        except RasterioIOError as exc:
            reason = re.sub(r"/vsimem/\S+", "the bytes sent", str(exc).splitlines()[0])[:160]
            raise ImageProblem(f"not a raster rasterio can read: {reason}", "not_image") from None
        yield ds


@dataclass(frozen=True)
class Header:
    """What a raster's header says: band count, dtype (of band 1), driver, descriptions, nodata, size."""

    count: int
    dtype: str
    driver: str
    descriptions: tuple[str | None, ...]
    nodata: float | None
    height: int = 0
    width: int = 0


def header(path: Path) -> Header:
    """The header (ImageProblem when the file is not a raster at all)."""
    with _open(path) as ds:
        return Header(ds.count, ds.dtypes[0], ds.driver, tuple(ds.descriptions), ds.nodata, ds.height, ds.width)


def probe(path: Path) -> Header | None:
    """The header, or None when the file is not a raster at all."""
    try:
        return header(path)
    except ImageProblem:
        return None


def read_band(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Band 1 of a single-band file on a grid of `shape` (H, W): bilinear when it is coarser (a 20 m or
    60 m band brought to the 10 m grid, as TorchGeo reads BigEarthNet), as it is when it matches."""
    from rasterio.enums import Resampling

    with _open(path) as ds:
        if ds.count != 1:
            raise ImageProblem(f"{path.name}: a band file must hold one band, holds {ds.count}", "band_count")
        try:
            return ds.read(1, out_shape=shape, resampling=Resampling.bilinear)
        except Exception as exc:
            raise ImageProblem(f"{path.name}: truncated or corrupt raster data: {str(exc).splitlines()[0][:120]}",
                               "truncated") from None


def read_raster(path: Path | bytes, max_pixels: int, min_side: int) -> Raster:
    """The whole raster (C, H, W) of a file or its bytes, checked as the module doc says."""
    with _open(path) as ds:
        if ds.driver != GTIFF:
            raise ImageProblem(f"not a GeoTIFF: the file is {ds.driver} (a renamed image?)", "not_image")
        w, h = ds.width, ds.height
        if w * h > max_pixels:
            raise ImageProblem(f"too large: {w}x{h} = {w * h} pixels per band > max_pixels {max_pixels}",
                               "too_large")
        if min(w, h) < min_side:
            raise ImageProblem(f"too small: {w}x{h}, each side must be >= {min_side} px", "too_small")
        dtypes = set(ds.dtypes)
        if len(dtypes) != 1 or ds.dtypes[0] not in DTYPES:
            raise ImageProblem(f"band dtype {'/'.join(sorted(dtypes))}: sslmae reads {', '.join(DTYPES)}",
                               "unsupported")
        try:
            array = ds.read()
        except Exception as exc:  # a truncated strip or tile surfaces here
            raise ImageProblem(f"truncated or corrupt raster data: {str(exc).splitlines()[0][:160]}",
                               "truncated") from None
        nodata = ds.nodata
        descriptions = tuple(ds.descriptions)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ImageProblem(f"{int((~np.isfinite(array)).sum())} NaN/inf pixel values in a float raster", "bad_pixels")
    if nodata is not None and bool((array == nodata).all()):
        raise ImageProblem(f"every pixel is nodata ({nodata:g})", "all_nodata")
    return Raster(array, descriptions, nodata)
