"""How a dataset's stored images become the fixed-size arrays the loaders, the decode cache and the
model read: 8-bit RGB (Pillow decodes, (S, S, 3) uint8, channels last: the rule before bands
existed) or a dataset's bands ((C, S, S) at the source dtype, from lossless .npy arrays).

`pixels_for(bands)` picks one; each has `shape(S)`, `dtype`, `decode(source, S)` (a cache row),
`tensor(row)` (the loader's (C, S, S) item) and `key` (what the cache key adds; "" for RGB, so an
RGB cache keeps its name).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sslmae.bands import Bands


def decode_rgb(source: Path | bytes, size: int) -> np.ndarray:
    """Decode a file or its bytes to (size, size, 3) uint8 RGB, channels last (bilinear resize
    when needed).

    The one RGB decoding rule: `load_image`, the cache builder and the shard datasets all call it, so
    a cached row or a shard's image holds exactly the pixels `load_image` returns for the file."""
    with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as im:
        return rgb_array(im, size)


def rgb_array(im: Image.Image, size: int) -> np.ndarray:
    """An opened image -> (size, size, 3) uint8 RGB: decode_rgb's rule, for callers that check
    the header (size, format) before paying for the decode (the model server)."""
    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.array(im, dtype=np.uint8)  # a copy owned by numpy, not PIL's buffer


# torch.from_numpy warns (once per process) that a read-only array gives a tensor it
# cannot mark read-only. Cache rows are read-only on purpose (a shared memory map) and are
# only ever copied (collate stacks them into a new batch), so that one warning is noise.
_READONLY_WARNING_SEEN = False


def chw_view(hwc: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 array -> (3, S, S) tensor view of the same memory (no copy)."""
    global _READONLY_WARNING_SEEN
    if _READONLY_WARNING_SEEN:
        return torch.from_numpy(hwc).permute(2, 0, 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        view = torch.from_numpy(hwc).permute(2, 0, 1)
    _READONLY_WARNING_SEEN = True  # torch itself stays silent for the rest of the process
    return view



@dataclass(frozen=True)
class RgbPixels:
    channels: int = 3
    dtype: str = "uint8"
    key: str = ""

    def shape(self, size: int) -> tuple[int, int, int]:
        return (size, size, 3)

    def decode(self, source: Path | bytes, size: int) -> np.ndarray:
        return decode_rgb(source, size)  # the module's name, looked up per call: tests count decodes

    def tensor(self, row: np.ndarray) -> torch.Tensor:
        """(S, S, 3) uint8 -> (3, S, S) uint8 view of the same memory."""
        return chw_view(row)

    def owned(self, decoded: np.ndarray) -> torch.Tensor:
        """A freshly decoded (S, S, 3) uint8 -> (3, S, S) uint8, a contiguous tensor of its own."""
        return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class BandPixels:
    channels: int
    dtype: str

    @property
    def key(self) -> str:
        return f"bands {self.channels} {self.dtype}\0"

    def shape(self, size: int) -> tuple[int, int, int]:
        return (self.channels, size, size)

    def decode(self, source: Path | bytes, size: int) -> np.ndarray:
        """A stored (C, H, W) .npy -> (C, size, size) at the dataset's dtype: each band resized as the RGB
        rule resizes (Pillow's bilinear, which widens its filter when it shrinks), on 32-bit floats,
        integers then rounded and clipped to their range."""
        arr = np.load(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source, allow_pickle=False)
        if arr.ndim != 3 or arr.shape[0] != self.channels or arr.dtype.name != self.dtype:
            raise ValueError(f"{source if isinstance(source, Path) else 'stored image'}: shape {arr.shape} of "
                             f"{arr.dtype.name}, the dataset's images are {self.channels} bands of {self.dtype}")
        return self.resize(arr, size)

    def resize(self, arr: np.ndarray, size: int) -> np.ndarray:
        """(C, H, W) -> (C, size, size), same dtype (decode's rule)."""
        if arr.shape[1:] == (size, size):
            return arr
        t = np.stack([np.asarray(Image.fromarray(band.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
                      for band in arr])
        if np.dtype(self.dtype).kind in "ui":
            info = np.iinfo(self.dtype)
            t = np.clip(np.rint(t), info.min, info.max)
        return t.astype(self.dtype)

    def tensor(self, row: np.ndarray) -> torch.Tensor:
        """(C, S, S) at the source dtype -> (C, S, S) float32 (exact for 8- and 16-bit values)."""
        return torch.from_numpy(np.asarray(row, dtype=np.float32))

    owned = tensor  # a decoded array is already the tensor's own memory after the float32 copy


RGB = RgbPixels()


def pixels_for(bands: Bands | None) -> RgbPixels | BandPixels:
    return RGB if bands is None else BandPixels(bands.count, bands.dtype)
