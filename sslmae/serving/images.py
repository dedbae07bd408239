"""One image of a request, checked before it is decoded: base64 text -> bytes -> (S, S, 3) uint8 (a
model with bands: a GeoTIFF's bytes -> (C, S, S) at the model's dtype, or a tensor checked as sent).

Every way an image can be wrong is a `BadImage` whose message names the problem; the server
answers it with a 4xx and keeps serving. The header is read first (PIL opens lazily), so a
decompression bomb (a small file that claims 20,000 x 20,000 pixels) is refused before a
single pixel is allocated."""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from sslmae.bands import Bands
from sslmae.datasets.band_plan import model_bands
from sslmae.datasets.decode import ImageProblem
from sslmae.loading.images import rgb_array
from sslmae.loading.pixels import pixels_for


class BadImage(ValueError):
    """An image a request sent that cannot be scored; the message says why."""


@dataclass(frozen=True)
class ImageLimits:
    """What the server accepts of one image (pixels are width x height as the header states)."""

    max_pixels: int = 40_000_000  # a 6,300 x 6,300 tile; PIL itself refuses bombs only at 179 MP
    min_side: int = 8  # smaller says nothing at any input size; a 1 x 1 image is a client bug


def from_base64(text, where: str) -> bytes:
    """base64 text (str or bytes, standard or URL-safe alphabet) -> the encoded image's bytes."""
    if isinstance(text, dict) and set(text) == {"b64"}:  # v1's {"b64": ...} convention
        text = text["b64"]
    if not isinstance(text, (str, bytes)):
        raise BadImage(f"{where}: expected base64 text of an encoded image, got {type(text).__name__}")
    if not text:
        raise BadImage(f"{where}: empty")
    try:
        raw = text.encode("ascii") if isinstance(text, str) else text
        return base64.b64decode(raw.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadImage(f"{where}: not base64 text") from None


def image_bytes(item, where: str) -> bytes:
    """A request's image as sent: raw bytes (binary columns, v2's binary extension) as they are,
    else base64 text."""
    return bytes(item) if isinstance(item, (bytes, bytearray)) else from_base64(item, where)


def decode_image(data: bytes, size: int, limits: ImageLimits, where: str) -> np.ndarray:
    """Encoded image bytes -> (size, size, 3) uint8 RGB, by the rule training used (decode_rgb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > limits.max_pixels:
                    raise BadImage(f"{where}: {w} x {h} pixels is above the server's limit of "
                                   f"{limits.max_pixels:,} pixels (a decompression bomb, or a tile to cut first)")
                if min(w, h) < limits.min_side:
                    raise BadImage(f"{where}: {w} x {h} pixels is below the {limits.min_side}-pixel minimum side")
                return rgb_array(im, size)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"{where}: not an image PIL can read (JPEG, PNG, TIFF, WebP, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{where}: refused as a decompression bomb") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, damaged, unsupported mode
        raise BadImage(f"{where}: damaged or truncated image ({' '.join(str(exc).split())[:100]})") from None


def decode_bands(data: bytes, bands: Bands, size: int, limits: ImageLimits, where: str) -> np.ndarray:
    """A GeoTIFF's bytes -> (C, size, size) at the model's dtype: the model's bands by name, in its
    order (sslmae.datasets.band_plan.model_bands), resized by the rule training used; the header's
    size is checked (per band) before any band is read."""
    try:
        arr = model_bands(data, bands, limits.max_pixels, limits.min_side)
    except ImageProblem as exc:
        raise BadImage(f"{where}: {exc}") from None
    return pixels_for(bands).resize(arr, size)


TENSOR_DTYPES = {"UINT8": "uint8", "UINT16": "uint16", "INT16": "int16", "FP32": "float32"}  # v2 datatype -> numpy


def band_tensor(data, datatype: str, shape, bands: Bands, size: int, where: str) -> list[np.ndarray]:
    """A v2 tensor [N, C, H, W] of the model's bands -> N arrays (C, size, size) at the model's dtype.
    The band count and the size must be the model's; the values are the source's (UINT16 for 16-bit
    bands, FP32 for any: each value must be one the model's dtype holds)."""
    if datatype not in TENSOR_DTYPES:
        raise BadImage(f"{where}: datatype {datatype}; a tensor of bands is one of {', '.join(TENSOR_DTYPES)}")
    want = [bands.count, size, size]
    shape = [int(s) for s in shape]
    if len(shape) != 4 or shape[1:] != want:
        raise BadImage(f"{where}: shape {shape}, the model takes [N, {', '.join(map(str, want))}] "
                       f"(bands {', '.join(bands.names)})")
    try:
        arr = np.asarray(data, dtype=TENSOR_DTYPES[datatype]).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise BadImage(f"{where}: the data is not {shape} values of {datatype} ({' '.join(str(exc).split())[:80]})") from None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise BadImage(f"{where}: NaN or inf among the values")
    cast = arr.astype(bands.dtype)
    if not np.array_equal(cast.astype(arr.dtype), arr):
        raise BadImage(f"{where}: values that {bands.dtype} (the model's bands) cannot hold")
    return list(cast)
