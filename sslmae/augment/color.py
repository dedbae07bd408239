"""Batch photometric augmentation: colour jitter, random grayscale, Gaussian blur.

Every function takes a float batch `x: (N, 3, H, W)` with values in [0, 1] (i.e. after
`uint8 / 255`, *before* ImageNet normalisation) and returns a new tensor of the same
shape, dtype and device, still in [0, 1]. Per-image random parameters are drawn as
tensors on `x.device` (so a `generator`, when given, must live on that device too) and
applied to the whole batch at once: there is no Python loop over images, and on a GPU
nothing waits for the host. Probabilities may be one per image ((N,) tensors), which is how
`sslmae.augment.batch` gives labeled and unlabeled rows of one batch their own settings.

The semantics follow torchvision's transforms (the SSL-MAE authors' pipeline):
`ColorJitter(brightness, contrast, saturation, hue)`, `RandomGrayscale(p)` and
`RandomApply([GaussianBlur(kernel_size, sigma)], p)`. Differences, all deliberate:
- torchvision applies the four jitter operations in a random order per call;
  `color_jitter` always applies brightness -> contrast -> saturation -> hue.
- the authors run these on PIL images (uint8 rounding after each op); here every op works
  on floats and rounds nowhere.

The `adjust_*` helpers take explicit factors (a scalar or one per image, shape (N,)) and
match `torchvision.transforms.functional.adjust_*` on tensors to float rounding (<= 1e-5);
the random functions draw the factors and apply the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# ITU-R 601 luma, with torchvision's rounding of the red weight (rgb_to_grayscale on tensors).
LUMA = (0.2989, 0.587, 0.114)


# -- helpers with explicit factors -----------------------------------------------------


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """x: (N, 3, H, W) -> (N, 1, H, W) luma."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(1)


def _per_image(f: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (N,) factor as (N, 1, 1, 1) on x's device/dtype, to broadcast over images."""
    return torch.as_tensor(f, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


# The in-place kernels below (`_name_`) overwrite `out`; the public `adjust_*` wrappers
# never touch their input. color_jitter chains the in-place forms on its own copy: at
# batch 64 x 224 px one float batch is 38.5 MB, and on a CPU every fresh buffer that size
# costs page faults (glibc serves it by mmap), so avoiding temporaries is most of the speed.
# Arithmetic follows torchvision's _blend, ratio * x + (1 - ratio) * other, term by term.


def _brightness_(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return out.mul_(f).clamp_(0.0, 1.0)


def _contrast_(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # The mean luma is linear in the channel means: no (N, 1, H, W) luma image needed.
    luma = torch.tensor(LUMA, dtype=out.dtype, device=out.device)
    mean = (out.mean(dim=(2, 3)) @ luma).view(-1, 1, 1, 1)
    return out.mul_(f).add_(mean * (1.0 - f)).clamp_(0.0, 1.0)


def _saturation_(out: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    gray = rgb_to_grayscale(out).mul_(1.0 - f)
    return out.mul_(f).add_(gray).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """x: (N, 3, H, W) in [0, 1]; factor: scalar or (N,), >= 0 (1 = unchanged)."""
    return _brightness_(x.clone(), _per_image(factor, x))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend each image with the mean of its own luma; factor: scalar or (N,)."""
    return _contrast_(x.clone(), _per_image(factor, x))


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Blend each image with its luma image (0 = grayscale); factor: scalar or (N,)."""
    return _saturation_(x.clone(), _per_image(factor, x))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor | float) -> torch.Tensor:
    """Rotate hue by `shift` turns (scalar or (N,), in [-0.5, 0.5]) through HSV.

    Same result as torchvision's RGB -> HSV -> (h + shift) mod 1 -> RGB, but the way back
    uses the closed form  channel_n = v - c * clamp(min(k, 4 - k), 0, 1),
    k = (n + 6h) mod 6, n = 5, 3, 1 for R, G, B, with v = max and chroma c = max - min
    (= s * v). That avoids torchvision's six-way stack + einsum, and s never exists.
    """
    r, g, b = x.unbind(1)
    maxc = torch.maximum(r, g)
    torch.maximum(maxc, b, out=maxc)
    c = torch.minimum(r, g)
    torch.minimum(c, b, out=c)
    torch.sub(maxc, c, out=c)
    # Hue in sixths of a turn, by which channel is the max (ties: r, then g, as
    # torchvision); gray pixels (c = 0) get hue 0, and their value is v whatever the hue.
    is_r, is_g = maxc == r, maxc == g
    h = torch.where(is_r, g - b, torch.where(is_g, (b - r).add_(c, alpha=2.0), (r - g).add_(c, alpha=4.0)))
    h.div_(torch.where(c > 0, c, torch.ones_like(c)))
    h.add_(6.0 * _per_image(shift, x).squeeze(1)).remainder_(6.0)
    out = torch.empty_like(x)
    k = torch.empty_like(h)
    for i, n in enumerate((5.0, 3.0, 1.0)):  # three channels, each a whole-batch op
        torch.add(h, n, out=k).remainder_(6.0)
        torch.minimum(k, 4.0 - k, out=k).clamp_(0.0, 1.0)
        torch.sub(maxc, k.mul_(c), out=out[:, i])
    return out.clamp_(0.0, 1.0)


def _check_kernel(kernel_size: int, x: torch.Tensor) -> None:
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    if kernel_size // 2 >= min(x.shape[-2:]):  # reflect padding needs pad < size
        raise ValueError(f"kernel_size {kernel_size} too large for a {tuple(x.shape[-2:])} image")


def blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur, a different sigma per image, reflect padding.

    x: (N, C, H, W); sigma: (N,) > 0; kernel_size: odd, kernel_size // 2 < min(H, W) (reflect
    padding). The same kernel as torchvision's gaussian_blur (a sampled Gaussian of
    `kernel_size` taps, normalised to sum 1); the 2-D kernel is separable, so two 1-D
    grouped convolutions (one group per image channel) replace the k x k convolution.
    """
    _check_kernel(kernel_size, x)
    n, ch, hgt, wid = x.shape
    half = kernel_size // 2
    t = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-0.5 * (t / sigma.to(x.dtype).view(-1, 1)) ** 2)
    k1 = (k1 / k1.sum(1, keepdim=True)).repeat_interleave(ch, 0)  # (N*C, k)
    y = x.reshape(1, n * ch, hgt, wid)
    y = F.pad(y, (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k1.view(n * ch, 1, 1, kernel_size), groups=n * ch)
    y = F.conv2d(y, k1.view(n * ch, 1, kernel_size, 1), groups=n * ch)
    return y.reshape(n, ch, hgt, wid)


# -- random batch transforms -------------------------------------------------------------


def _range(value: float | Sequence[float] | None, name: str, center: float, lo: float) -> tuple[float, float] | None:
    """torchvision's ColorJitter._check_input: v -> [max(lo, center - v), center + v]; None = off."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        rng = (max(lo, center - value), center + value)
    else:
        rng = (float(value[0]), float(value[1]))
        if not lo <= rng[0] <= rng[1]:
            raise ValueError(f"{name} range must satisfy {lo} <= min <= max, got {rng}")
    return None if rng[0] == rng[1] == center else rng


def _uniform(n: int, rng: tuple[float, float], x: torch.Tensor, generator) -> torch.Tensor:
    u = torch.rand(n, device=x.device, dtype=x.dtype, generator=generator)
    return rng[0] + (rng[1] - rng[0]) * u


def _coin(n: int, p: float | torch.Tensor, x: torch.Tensor, generator) -> torch.Tensor:
    """(N,) bool, each True with probability p (a number, or one per image: (N,))."""
    if not isinstance(p, torch.Tensor) and not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return torch.rand(n, device=x.device, generator=generator) < p


def color_jitter(
    x: torch.Tensor,
    brightness: float | Sequence[float] | None = 0.0,
    contrast: float | Sequence[float] | None = 0.0,
    saturation: float | Sequence[float] | None = 0.0,
    hue: float | Sequence[float] | None = 0.0,
    generator: torch.Generator | None = None,
    p: float = 1.0,
) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue per image, as torchvision's ColorJitter.

    x: (N, 3, H, W) float in [0, 1] -> same. brightness / contrast / saturation b: factor
    uniform in [max(0, 1 - b), 1 + b] (or an explicit (min, max)); hue h: shift uniform
    in [-h, h] turns, h <= 0.5. Fixed order: brightness, contrast, saturation, hue.
    `p` is the probability that an image is jittered at all (the authors wrap ColorJitter
    in RandomApply(p=0.8)); the others come back unchanged, bit for bit.
    All parameters are drawn up front in that order, so a seeded generator reproduces
    the batch exactly.
    """
    n = x.shape[0]
    b_rng = _range(brightness, "brightness", 1.0, 0.0)
    c_rng = _range(contrast, "contrast", 1.0, 0.0)
    s_rng = _range(saturation, "saturation", 1.0, 0.0)
    h_rng = _range(hue, "hue", 0.0, -0.5)
    if h_rng is not None and not -0.5 <= h_rng[0] <= h_rng[1] <= 0.5:
        raise ValueError(f"hue range must lie in [-0.5, 0.5], got {h_rng}")
    apply = _coin(n, p, x, generator)
    factors = [None if r is None else _uniform(n, r, x, generator) for r in (b_rng, c_rng, s_rng, h_rng)]
    return jitter_with_factors(x, *factors, apply=apply)


def jitter_with_factors(x: torch.Tensor, brightness: torch.Tensor | None, contrast: torch.Tensor | None,
                        saturation: torch.Tensor | None, hue: torch.Tensor | None,
                        apply: torch.Tensor) -> torch.Tensor:
    """x: (N, 3, H, W) in [0, 1]; each factor (N,) or None (op off); apply: (N,) bool, the rows
    jittered (the others come back unchanged, bit for bit). Order: brightness, contrast,
    saturation, hue."""
    bf, cf, sf, hf = (None if f is None else f.to(x.dtype).view(-1, 1, 1, 1)
                      for f in (brightness, contrast, saturation, hue))
    out = x.clone()
    if bf is not None:
        _brightness_(out, bf)
    if cf is not None:
        _contrast_(out, cf)
    if sf is not None:
        _saturation_(out, sf)
    if hf is not None:
        out = adjust_hue(out, hf)
    # Put back the images that are not jittered. A where-select over the whole batch
    # rather than jittering a subset: no host sync on a GPU, and these ops are cheap.
    return torch.where(~apply.view(-1, 1, 1, 1), x, out, out=out)


def band_jitter(x: torch.Tensor, brightness: torch.Tensor | None, contrast: torch.Tensor | None,
                apply: torch.Tensor) -> torch.Tensor:
    """x: (N, C, H, W) in [0, 1], any band count: brightness (each band scaled by the factor) then
    contrast (each band blended with its own mean: bands have no luma), factors (N,) or None; apply:
    (N,) bool as in jitter_with_factors. Saturation, hue and grayscale are colour-space ops of RGB
    and have no meaning for other bands."""
    out = x.clone()
    if brightness is not None:
        _brightness_(out, brightness.to(x.dtype).view(-1, 1, 1, 1))
    if contrast is not None:
        f = contrast.to(x.dtype).view(-1, 1, 1, 1)
        mean = out.mean(dim=(2, 3), keepdim=True)
        out.mul_(f).add_(mean * (1.0 - f)).clamp_(0.0, 1.0)
    return torch.where(~apply.view(-1, 1, 1, 1), x, out, out=out)


def random_grayscale(x: torch.Tensor, p: float | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, 3, H, W) -> same; each image, with probability p (a number or (N,)), becomes its
    luma on all three channels (torchvision's RandomGrayscale(p))."""
    gray = _coin(x.shape[0], p, x, generator).view(-1, 1, 1, 1)
    return torch.where(gray, rgb_to_grayscale(x), x)  # (N, 1, H, W) luma broadcasts


def gaussian_blur(
    x: torch.Tensor,
    p: float | torch.Tensor,
    sigma: tuple[float, float] | tuple[torch.Tensor, torch.Tensor] = (0.1, 2.0),
    kernel_size: int = 5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x: (N, C, H, W) -> same; each image, with probability p (a number or (N,)), is blurred
    with a sigma drawn uniformly from `sigma` (numbers, or (N,) bounds per image): torchvision's
    RandomApply([GaussianBlur(kernel_size, sigma)], p). The authors use 5 taps.

    Every image is convolved and the chosen ones kept (a where-select): selecting the subset
    first would need its size on the host, a sync on a GPU, and 5 separable taps are cheap.
    """
    lo, hi = sigma
    if not isinstance(lo, torch.Tensor) and not 0.0 < float(lo) <= float(hi):
        raise ValueError(f"sigma must satisfy 0 < min <= max, got {sigma}")
    _check_kernel(kernel_size, x)  # up front: even when no image is drawn for blurring
    n = x.shape[0]
    chosen = _coin(n, p, x, generator)
    u = torch.rand(n, device=x.device, dtype=x.dtype, generator=generator)  # drawn for every image
    s = lo + (hi - lo) * u
    return torch.where(chosen.view(-1, 1, 1, 1), blur(x, s, kernel_size), x)
