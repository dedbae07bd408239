"""Decode one source image to 8-bit RGB, applying the documented rule for each defect.

| input | rule |
|---|---|
| empty file, not an image, truncated | bad item |
| smaller than `min_side` px on a side | bad item (too small to patchify) |
| more than `max_pixels` pixels | bad item, checked from the header before decoding (bomb guard) |
| grayscale (L, LA, 1) | replicated to RGB, noted |
| RGBA / LA / PA | alpha dropped, noted (with a count of transparent pixels when any) |
| palette (P) | expanded to RGB, noted |
| CMYK, YCbCr, LAB, HSV | converted to RGB, noted |
| 16-bit / 32-bit (I;16, I, F) | to 8 bits: a fixed scale when the layout gives one (bigearthnet), else a per-image 2-98 % percentile stretch; noted |
| multi-band files PIL cannot read (e.g. 13-band TIFF) | read by sslmae.datasets.raster when the dataset has bands (data.bands); else a bad item |
| EXIF orientation | applied (pixels turned upright), noted |
| band files (bigearthnet) | each single-channel, same size; stacked R, G, B |
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
TO_RGB_NOTES = {"L": "grayscale", "1": "bilevel", "P": "palette", "CMYK": "CMYK", "YCbCr": "YCbCr",
                "LAB": "LAB", "HSV": "HSV"}
WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageProblem(Exception):
    """This image cannot be used; `kind` classifies it for the report."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Decoded:
    """rgb: (H, W, 3) uint8, or None where `array` holds the pixels: (C, H, W) at the source dtype
    (a dataset with bands, sslmae.bands); width/height/bands/mode: of the source; notes: conversions
    applied; passthrough: the source file can be kept byte for byte (an upright RGB JPEG or PNG)."""

    rgb: np.ndarray | None
    width: int
    height: int
    bands: int
    mode: str
    format: str
    notes: list[str] = field(default_factory=list)
    passthrough: bool = False
    array: np.ndarray | None = None

    @property
    def content_sha256(self) -> str:
        """Hash of the decoded pixels: equal for identical images in different files/formats."""
        if self.array is not None:
            c, h, w = self.array.shape
            head = f"{w}x{h}x{c}:{self.array.dtype.str}:".encode()
            return hashlib.sha256(head + np.ascontiguousarray(self.array).tobytes()).hexdigest()
        h, w, _ = self.rgb.shape
        return hashlib.sha256(f"{w}x{h}:".encode() + self.rgb.tobytes()).hexdigest()


def _stretch(a: np.ndarray, fixed_max: float | None) -> np.ndarray:
    """High-depth array -> uint8: fixed scale [0, fixed_max], else per-image 2-98 % stretch."""
    a = a.astype(np.float64)
    if fixed_max is not None:
        lo, hi = 0.0, fixed_max
    else:
        lo, hi = np.percentile(a, [2, 98])
        if hi <= lo:
            hi = lo + 1.0
    return (np.clip((a - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def _open(path: Path, max_pixels: int, min_side: int) -> Image.Image:
    if path.stat().st_size == 0:
        raise ImageProblem("empty file", "empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"too large to decode safely: {exc}", "too_large") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image PIL can read (unknown format, or a multi-band file: "
                           "set data.bands=all to read its bands)", "not_image") from None
    except OSError as exc:
        raise ImageProblem(f"cannot open: {exc}", "not_image") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ImageProblem(f"too large: {w}x{h} = {w * h} pixels > max_pixels {max_pixels}", "too_large")
    if min(w, h) < min_side:
        raise ImageProblem(f"too small: {w}x{h}, each side must be >= {min_side} px", "too_small")
    try:
        im.load()
    except OSError as exc:  # "image file is truncated", broken data stream
        raise ImageProblem(f"truncated or corrupt image data: {exc}", "truncated") from None
    return im


def _to_rgb(im: Image.Image, notes: list[str], fixed_max: float | None) -> np.ndarray:
    mode = im.mode
    if mode in HIGH_DEPTH:
        notes.append(f"{mode} high bit depth scaled to 8 bits" + (" (fixed scale)" if fixed_max else " (2-98% stretch)"))
        g = _stretch(np.asarray(im), fixed_max)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in WITH_ALPHA:
        alpha = np.asarray(im.getchannel(im.getbands()[-1]))
        clear = int((alpha < 255).sum())
        notes.append(f"{mode}: alpha dropped" + (f" ({clear} non-opaque pixels)" if clear else ""))
        base = {"RGBA": "RGB", "RGBa": "RGB", "LA": "L", "La": "L", "PA": "RGB"}[mode]
        im = im.convert("RGBA").convert("RGB") if mode == "PA" else im.convert(base)
        mode = im.mode
    if mode == "P" and "transparency" in im.info:
        notes.append("palette with transparency: expanded, transparency dropped")
        im = im.convert("RGBA").convert("RGB")
    elif mode in TO_RGB_NOTES:
        notes.append(f"{TO_RGB_NOTES[mode]} converted to RGB")
        im = im.convert("RGB")
    elif mode != "RGB":
        raise ImageProblem(f"unsupported image mode {mode}", "unsupported")
    return np.asarray(im, dtype=np.uint8)


def decode_file(path: Path, max_pixels: int, min_side: int, fixed_max: float | None = None) -> Decoded:
    im = _open(path, max_pixels, min_side)
    notes: list[str] = []
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        notes.append(f"EXIF orientation {orientation} applied")
    src_mode, bands, fmt = im.mode, len(im.getbands()), (im.format or "")
    w, h = im.size
    rgb = _to_rgb(im, notes, fixed_max)
    passthrough = not notes and src_mode == "RGB" and fmt in ("JPEG", "PNG")
    return Decoded(rgb, w, h, bands, src_mode, fmt, notes, passthrough)


def decode_bands(paths: tuple[Path, ...], max_pixels: int, min_side: int, fixed_max: float | None) -> Decoded:
    """One single-channel file per band (R, G, B order) -> RGB."""
    chans, size = [], None
    for p in paths:
        im = _open(p, max_pixels, min_side)
        if len(im.getbands()) != 1:
            raise ImageProblem(f"{p.name}: a band file must have one channel, has {len(im.getbands())}", "unsupported")
        if size is not None and im.size != size:
            raise ImageProblem(f"{p.name}: band size {im.size} differs from {size}", "unsupported")
        size = im.size
        a = np.asarray(im)
        chans.append(_stretch(a, fixed_max) if a.dtype != np.uint8 else a)
    rgb = np.stack(chans, axis=2)
    return Decoded(rgb, size[0], size[1], len(paths), "bands", "TIFF", [f"{len(paths)} band files composed to RGB"])


def decode(files: tuple[Path, ...], max_pixels: int, min_side: int, fixed_max: float | None = None) -> Decoded:
    if len(files) == 1:
        return decode_file(files[0], max_pixels, min_side, fixed_max)
    return decode_bands(files, max_pixels, min_side, fixed_max)


def encode_npy(array: np.ndarray) -> bytes:
    """(C, H, W) at its dtype -> .npy bytes: lossless, read back without a decoder."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)  # fast to write and to read
    return buf.getvalue()
