"""A dataset's bands: which of the source's bands the model sees, in what order, at what dtype, and
their statistics on the training images. One small value that ingest records, the loader, the model,
`predict` and `serve` receive, and the model file carries.

RGB (8-bit, three bands) is the special case: `Bands.rgb()`, scaled by /255 and normalised with the
encoder weights' statistics, exactly as before bands existed. Any other `Bands` is scaled per band by
a stretch to [0, 1] between the 2 % and 98 % percentiles of its training pixels, clipped (SatMAE's
SentinelNormalize stretches mean +- 2 std the same way), then normalised with the stretched mean and
std (docs/data.md, "Multispectral imagery").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

RGB_NAMES = ("red", "green", "blue")
DTYPES = ("uint8", "uint16", "int16", "float32")
SAMPLE = 1 << 20  # float rasters: pixels per band kept for the percentiles (integers are counted exactly)


class BandsError(ValueError):
    """A band setting or a raster that contradicts the dataset's bands; the message names both."""


@dataclass(frozen=True)
class BandStats:
    """Per band, over the training images' valid (not nodata) pixels: mean, std, 2 % / 98 %
    percentiles (each (C,)), nodata pixel count (C,) and pixels seen per band."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    p2: tuple[float, ...]
    p98: tuple[float, ...]
    nodata: tuple[int, ...]
    pixels: int


@dataclass(frozen=True)
class Bands:
    """names: (C,) in the order the model sees them; dtype: the source's (numpy name); rule: how they
    were chosen (`rgb`, `all`, or the data.bands list as given); nodata: the source's nodata value,
    or None; stats: of the training images, once known (None before training); scale: the input is
    DN / scale (unnormalised) instead of the stretch, as pretrained weights expect (torchgeo:)."""

    names: tuple[str, ...]
    dtype: str = "uint8"
    rule: str = "rgb"
    nodata: float | None = None
    stats: BandStats | None = None
    scale: float | None = None

    @classmethod
    def rgb(cls) -> "Bands":
        return cls(RGB_NAMES)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def is_rgb(self) -> bool:
        return self.rule == "rgb"

    def with_stats(self, stats: BandStats) -> "Bands":
        return replace(self, stats=stats)

    def unit_range(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(lo (C,), hi (C,)) of the stretch to [0, 1]; None for RGB (/255)."""
        if self.is_rgb:
            return None
        if self.scale is not None:
            return (0.0,) * self.count, (float(self.scale),) * self.count
        if self.stats is None:
            raise BandsError(f"bands {list(self.names)}: no statistics yet (they come from the training images)")
        lo = np.asarray(self.stats.p2, np.float64)
        hi = np.maximum(np.asarray(self.stats.p98, np.float64), lo + 1e-6)  # a constant band: no division by 0
        return tuple(lo.tolist()), tuple(hi.tolist())

    def unit_moments(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The stretched pixels' mean and std (C,) each: what the encoder input is normalised with.
        The clip moves them little; they are the training pixels' moments put through the stretch.
        With a scale (the weights' own input): 0 and 1, the scaled input as it is."""
        if self.scale is not None:
            return (0.0,) * self.count, (1.0,) * self.count
        lo, hi = (np.asarray(v) for v in self.unit_range())
        mean = np.clip((np.asarray(self.stats.mean) - lo) / (hi - lo), 0.0, 1.0)
        std = np.maximum(np.asarray(self.stats.std) / (hi - lo), 1e-3)
        return tuple(mean.tolist()), tuple(std.tolist())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Bands":
        stats = d.get("stats")
        return cls(names=tuple(d["names"]), dtype=d["dtype"], rule=d["rule"], nodata=d.get("nodata"),
                   scale=d.get("scale"), stats=BandStats(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in stats.items()})
                   if stats else None)

    @classmethod
    def from_json(cls, text: str) -> "Bands":
        return cls.from_dict(json.loads(text))


def read_model_bands(path) -> Bands | None:
    """The bands a model file was trained on (None: 8-bit RGB), its weights memory-mapped, not read."""
    import torch  # late: a heavy import, here only for a model file's header

    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return Bands.from_json(payload["bands"]) if isinstance(payload, dict) and "bands" in payload else None


def names_of(bands: Bands | None) -> tuple[str, ...]:
    """A dataset's or model's band names; None (8-bit RGB): red, green, blue."""
    return RGB_NAMES if bands is None else bands.names


def check_same(data: Bands | None, model: Bands | None, where: str) -> None:
    """One line naming both lists when the images' bands are not the model's (names, order, dtype)."""
    if names_of(data) != names_of(model) or (data.dtype if data else "uint8") != (model.dtype if model else "uint8"):
        shown = lambda b: f"{list(names_of(b))} ({b.dtype if b else 'uint8'})"  # noqa: E731
        raise BandsError(f"{where}: the images have bands {shown(data)}, the model was trained on {shown(model)}")


def canonical(name: str) -> str:
    """A band name as Sentinel-2 products spell it any way: B01 = B1, B8a = B8A."""
    name = name.strip().upper()
    return "B" + name[1:].lstrip("0") if len(name) > 2 and name[0] == "B" and name[1] == "0" else name


def match_weights(weights: tuple[str, ...], data: tuple[str, ...], adapt: bool, source: str) -> list[int | None]:
    """For each of the data's bands (C,), the weights' input channel of that band, or None (adapt:
    the mean kernel). The same bands in the same order (spelt either way) match; anything else is
    one line naming both lists unless `adapt` (model.adapt_bands)."""
    w, d = [canonical(n) for n in weights], [canonical(n) for n in data]
    if w == d:
        return list(range(len(w)))
    if not adapt:
        raise BandsError(f"model.pretrained: {source}: the weights' bands {list(weights)} are not the data's "
                         f"{list(data)}; choose those bands (data.bands) or set model.adapt_bands=true")
    return [w.index(n) if n in w else None for n in d]


def default_names(count: int, descriptions: tuple[str | None, ...] = ()) -> tuple[str, ...]:
    """The source's band descriptions when every band has a distinct one, else B1..Bn (1-based)."""
    if len(descriptions) == count and all(descriptions) and len(set(descriptions)) == count:
        return tuple(descriptions)
    return tuple(f"B{i + 1}" for i in range(count))


def select(setting: str | list, available: tuple[str, ...]) -> list[int]:
    """0-based indices into `available` of the bands `setting` (data.bands) names, in its order:
    `all`, or a list of band names or 1-based indices. One line naming both lists when it asks for
    a band the source lacks."""
    if setting == "all":
        return list(range(len(available)))
    if isinstance(setting, str):
        raise BandsError(f"data.bands: {setting!r} is not all, rgb or a list of bands")
    chosen = []
    for item in setting:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 1 <= item <= len(available):
                raise BandsError(f"data.bands: band index {item} outside 1..{len(available)} "
                                 f"(the source's bands: {list(available)})")
            chosen.append(item - 1)
        elif item in available:
            chosen.append(available.index(item))
        else:
            raise BandsError(f"data.bands: {item!r} is not one of the source's bands {list(available)}")
    if len(set(chosen)) != len(chosen):
        raise BandsError(f"data.bands: a band is named twice in {setting}")
    return chosen


def rule_of(setting: str | list) -> str:
    return setting if isinstance(setting, str) else json.dumps(list(setting))


class StatsPass:
    """Band statistics over arrays (C, H, W) fed one at a time: exact mean and std (float64 sums),
    exact percentiles for integer dtypes (a count per value), percentiles of a seeded sample of
    at most SAMPLE pixels per band for float ones. Memory: constant in the number of arrays."""

    def __init__(self, count: int, dtype: str, nodata: float | None, seed: int = 0):
        self.count, self.dtype, self.nodata = count, np.dtype(dtype), nodata
        self.sum = np.zeros(count)
        self.sq = np.zeros(count)
        self.n = np.zeros(count, np.int64)
        self.missing = np.zeros(count, np.int64)
        self.integer = self.dtype.kind in "ui"
        if self.integer:
            info = np.iinfo(self.dtype)
            self.offset, self.hist = -int(info.min), np.zeros((count, int(info.max) - int(info.min) + 1), np.int64)
        else:
            self.samples = [np.empty(0, np.float32) for _ in range(count)]
            self.rng = np.random.default_rng(seed)

    def add(self, arr: np.ndarray) -> None:
        """arr: (C, H, W) or a batch (N, C, H, W) of the dataset's dtype (a batch: one count per band
        for all its images, which is what keeps integer percentiles fast)."""
        per_band = np.moveaxis(np.asarray(arr), -3, 0).reshape(self.count, -1)
        for b in range(self.count):
            band = per_band[b]
            valid = band != self.nodata if self.nodata is not None else np.ones(band.shape, bool)
            if self.dtype.kind == "f":
                valid &= np.isfinite(band)
            values = band[valid]
            self.missing[b] += band.size - values.size
            self.n[b] += values.size
            v = values.astype(np.float64)
            self.sum[b] += v.sum()
            self.sq[b] += (v * v).sum()
            if self.integer:
                self.hist[b] += np.bincount(values.astype(np.int64) + self.offset, minlength=self.hist.shape[1])
            else:
                self._sample(b, values.astype(np.float32))

    def _sample(self, b: int, values: np.ndarray) -> None:
        kept = np.concatenate([self.samples[b], values])
        if kept.size > SAMPLE:
            kept = self.rng.choice(kept, SAMPLE, replace=False)
        self.samples[b] = kept

    def _percentile(self, b: int, q: float) -> float:
        if self.integer:
            cdf = np.cumsum(self.hist[b])
            return float(np.searchsorted(cdf, q / 100 * cdf[-1], side="left") - self.offset)
        return float(np.percentile(self.samples[b], q)) if self.samples[b].size else 0.0

    def result(self) -> BandStats:
        n = np.maximum(self.n, 1)
        mean = self.sum / n
        std = np.sqrt(np.maximum(self.sq / n - mean * mean, 0.0))
        return BandStats(mean=tuple(mean.tolist()), std=tuple(std.tolist()),
                         p2=tuple(self._percentile(b, 2) for b in range(self.count)),
                         p98=tuple(self._percentile(b, 98) for b in range(self.count)),
                         nodata=tuple(int(x) for x in self.missing), pixels=int(self.n.max()) if self.count else 0)
