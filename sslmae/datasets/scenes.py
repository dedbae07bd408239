"""The embedded dataset's scenes: deterministic synthetic multi-label aerial scenes.

Each label is a visible element drawn with texture and random variation (position, size,
orientation, colour), several per image, on a textured ground. Scene i depends only on (seed, i),
so any subset can be regenerated bit for bit. `sslmae.datasets.synth` writes them as a dataset;
`sslmae.datasets.synth_bands` sees them in 12 bands.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw


LABELS = ("buildings", "cars", "field", "grass", "road", "sand", "trees", "water")
# marginal probability that each element is present (several per image on average)
PRESENCE = {"buildings": 0.40, "cars": 0.30, "field": 0.30, "grass": 0.40,
            "road": 0.40, "sand": 0.25, "trees": 0.45, "water": 0.30}


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1], (size, size): a random coarse grid upsampled bicubically."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def _textured(rng, size, base, jitter, cells, grain) -> np.ndarray:
    """A colour field (size, size, 3) float in [0, 255]: base colour, smooth and fine noise."""
    base = np.asarray(base, np.float32) + rng.normal(0, jitter, 3)
    low = _noise(rng, size, cells)[..., None] - 0.5
    fine = rng.normal(0, 1, (size, size, 1)).astype(np.float32)
    return np.clip(base + 60 * low * base / 128 + grain * fine, 0, 255)


def _paste(canvas: np.ndarray, layer: np.ndarray, mask: Image.Image) -> None:
    m = (np.asarray(mask, dtype=np.float32) / 255.0)[..., None]
    canvas[:] = canvas * (1 - m) + layer * m


def _blob(rng, size, frac) -> Image.Image:
    """A soft irregular region covering about `frac` of the image (L-mode mask)."""
    n = _noise(rng, size, int(rng.integers(2, 5)))
    thr = np.quantile(n, 1 - frac)
    return Image.fromarray(((n > thr) * 255).astype(np.uint8))


def _draw_grass(rng, canvas, size):
    layer = _textured(rng, size, (95, 150, 70), 12, 6, 10)
    _paste(canvas, layer, _blob(rng, size, rng.uniform(0.35, 0.6)))


def _draw_sand(rng, canvas, size):
    layer = _textured(rng, size, (222, 200, 150), 10, 3, 14)
    _paste(canvas, layer, _blob(rng, size, rng.uniform(0.2, 0.4)))


def _draw_field(rng, canvas, size):
    layer = _textured(rng, size, (185, 175, 85), 15, 3, 6)
    period = rng.uniform(3, 7) * size / 64
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    layer = np.clip(layer * (1 + 0.18 * stripes[..., None]), 0, 255)
    mask = Image.new("L", (size, size), 0)
    x0, y0 = rng.uniform(-0.2, 0.5, 2) * size
    w, h = rng.uniform(0.45, 0.8, 2) * size
    ImageDraw.Draw(mask).rectangle([x0, y0, x0 + w, y0 + h], fill=255)
    _paste(canvas, layer, mask.rotate(float(rng.uniform(-30, 30)), resample=Image.NEAREST))


def _draw_water(rng, canvas, size):
    layer = _textured(rng, size, (40, 80, 140), 10, 4, 4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    ripples = np.sin((yy + 3 * np.sin(xx / 5)) * 2 * np.pi / (4 * size / 64))
    layer = np.clip(layer + 10 * ripples[..., None], 0, 255)
    _paste(canvas, layer, _blob(rng, size, rng.uniform(0.2, 0.45)))


def _road_geometry(rng, size):
    """End points of a road crossing the image and its width (pixels)."""
    t = rng.uniform(0.2, 0.8) * size
    if rng.random() < 0.5:
        a, b = (0.0, t), (float(size), t + rng.uniform(-0.3, 0.3) * size)
    else:
        a, b = (t, 0.0), (t + rng.uniform(-0.3, 0.3) * size, float(size))
    return a, b, max(4, int(size * rng.uniform(0.1, 0.16)))


def _draw_road(rng, canvas, size, geometry):
    a, b, width = geometry
    layer = _textured(rng, size, (120, 120, 120), 8, 8, 6)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).line([a, b], fill=255, width=width)
    _paste(canvas, layer, mask)
    # dashed centre line
    dash = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(dash)
    steps = 10
    for k in range(0, steps, 2):
        p = [a[i] + (b[i] - a[i]) * k / steps for i in (0, 1)]
        q = [a[i] + (b[i] - a[i]) * (k + 1) / steps for i in (0, 1)]
        d.line([tuple(p), tuple(q)], fill=255, width=max(1, size // 64))
    _paste(canvas, np.full_like(canvas, 235), dash)


def _draw_trees(rng, canvas, size):
    cx, cy = rng.uniform(0.15, 0.85, 2) * size
    spread = rng.uniform(0.12, 0.3) * size
    mask = Image.new("L", (size, size), 0)
    shadow = Image.new("L", (size, size), 0)
    dm, ds = ImageDraw.Draw(mask), ImageDraw.Draw(shadow)
    for _ in range(int(rng.integers(12, 30))):
        x, y = rng.normal((cx, cy), spread)
        r = rng.uniform(0.025, 0.055) * size
        ds.ellipse([x - r + r / 2, y - r + r / 2, x + r + r / 2, y + r + r / 2], fill=255)
        dm.ellipse([x - r, y - r, x + r, y + r], fill=255)
    _paste(canvas, canvas * 0.45, shadow)
    _paste(canvas, _textured(rng, size, (30, 85, 35), 8, 10, 18), mask)


def _draw_buildings(rng, canvas, size):
    roofs = [(170, 70, 60), (200, 200, 195), (110, 110, 125), (150, 120, 90)]
    for _ in range(int(rng.integers(2, 6))):
        w, h = rng.uniform(0.1, 0.25, 2) * size
        x, y = rng.uniform(0, 1, 2) * (size - np.array([w, h]))
        off = 0.04 * size
        shadow = Image.new("L", (size, size), 0)
        ImageDraw.Draw(shadow).rectangle([x + off, y + off, x + w + off, y + h + off], fill=255)
        _paste(canvas, canvas * 0.4, shadow)
        roof = roofs[int(rng.integers(len(roofs)))]
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).rectangle([x, y, x + w, y + h], fill=255)
        layer = _textured(rng, size, roof, 10, 12, 5)
        # a ridge line: roofs have two faces with different brightness
        half = Image.new("L", (size, size), 0)
        ImageDraw.Draw(half).rectangle([x, y, x + w, y + h / 2], fill=255)
        _paste(canvas, layer, mask)
        _paste(canvas, layer * 0.8, half)


def _draw_cars(rng, canvas, size, road):
    colors = [(220, 30, 30), (240, 240, 240), (20, 20, 20), (30, 60, 200), (230, 200, 30)]
    if road is None:  # a parking lot holds them
        x0, y0 = rng.uniform(0.05, 0.5, 2) * size
        w, h = rng.uniform(0.3, 0.45, 2) * size
        lot = Image.new("L", (size, size), 0)
        ImageDraw.Draw(lot).rectangle([x0, y0, x0 + w, y0 + h], fill=255)
        _paste(canvas, _textured(rng, size, (105, 105, 110), 5, 8, 4), lot)
        spots = [(x0 + rng.uniform(0.1, 0.9) * w, y0 + rng.uniform(0.1, 0.9) * h) for _ in range(8)]
    else:
        a, b, _ = road
        spots = [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for t in rng.uniform(0.05, 0.95, 8)]
    n = int(rng.integers(3, 8))
    cl, cw = 0.06 * size, 0.035 * size
    for x, y in spots[:n]:
        mask = Image.new("L", (size, size), 0)
        horizontal = rng.random() < 0.5
        dx, dy = (cl, cw) if horizontal else (cw, cl)
        ImageDraw.Draw(mask).rectangle([x - dx / 2, y - dy / 2, x + dx / 2, y + dy / 2], fill=255)
        col = colors[int(rng.integers(len(colors)))]
        _paste(canvas, np.broadcast_to(np.asarray(col, np.float32), canvas.shape), mask)


def render(seed: int, index: int, size: int) -> tuple[np.ndarray, dict[str, int]]:
    """One scene: (size, size, 3) uint8 image and its 0/1 labels (each drawn element is present)."""
    rng = np.random.default_rng([seed, index])
    present = {k: int(rng.random() < PRESENCE[k]) for k in LABELS}
    if not any(present.values()):
        present[LABELS[int(rng.integers(len(LABELS)))]] = 1
    canvas = _textured(rng, size, (140, 112, 80), 15, 5, 12)  # bare soil: not a label
    road = _road_geometry(rng, size) if present["road"] else None
    painters: list[tuple[str, Callable]] = [
        ("grass", lambda: _draw_grass(rng, canvas, size)),
        ("sand", lambda: _draw_sand(rng, canvas, size)),
        ("field", lambda: _draw_field(rng, canvas, size)),
        ("water", lambda: _draw_water(rng, canvas, size)),
        ("road", lambda: _draw_road(rng, canvas, size, road)),
        ("trees", lambda: _draw_trees(rng, canvas, size)),
        ("buildings", lambda: _draw_buildings(rng, canvas, size)),
        ("cars", lambda: _draw_cars(rng, canvas, size, road)),
    ]
    for name, paint in painters:  # back to front
        if present[name]:
            paint()
    return np.clip(canvas, 0, 255).astype(np.uint8), present
