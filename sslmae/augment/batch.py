"""Batch augmentation on the training device, per stream.

Labeled and unlabeled rows of one batch get their own settings (`sslmae.augment.streams.StreamAugment`),
applied in one pass over the whole batch: every random choice is drawn per image as a tensor, and a
row's probabilities and ranges come from its stream, so nothing is sliced by stream and nothing
waits for the host.

Order, as torchvision's Compose in the authors' code: random resized crop -> horizontal flip
-> vertical flip -> (90-degree turns, an sslmae option) -> colour jitter -> grayscale -> blur.
Pixels stay in [0, 1] (the reconstruction target); `sslmae.augment.pixels.normalize` makes the
encoder input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sslmae.augment.color import band_jitter, gaussian_blur, jitter_with_factors, random_grayscale
from sslmae.augment.streams import StreamAugment


def _per_row(labeled: torch.Tensor, lab, unl, dtype=torch.float32) -> torch.Tensor:
    """(N,) tensor: `lab` on labeled rows, `unl` on the others."""
    return torch.where(labeled, torch.tensor(lab, dtype=dtype, device=labeled.device),
                       torch.tensor(unl, dtype=dtype, device=labeled.device))


def _uniform(lo: torch.Tensor, hi: torch.Tensor, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(lo.shape, device=lo.device, generator=generator)


def crop_and_flip(x: torch.Tensor, labeled: torch.Tensor, lab: StreamAugment, unl: StreamAugment,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, C, H, W) float -> same shape, one affine warp per image (one grid_sample for the
    batch): a crop of area in the row's crop_scale and aspect in its crop_ratio at a random
    position, resized back, then the row's flips (and transpose, with rot90)."""
    n, device = x.shape[0], x.device

    def rows(field: str) -> torch.Tensor:
        return _per_row(labeled, float(getattr(lab, field)), float(getattr(unl, field)))

    area = _uniform(_per_row(labeled, lab.crop_scale[0], unl.crop_scale[0]),
                    _per_row(labeled, lab.crop_scale[1], unl.crop_scale[1]), generator)
    log_r = _uniform(_per_row(labeled, math.log(lab.crop_ratio[0]), math.log(unl.crop_ratio[0])),
                     _per_row(labeled, math.log(lab.crop_ratio[1]), math.log(unl.crop_ratio[1])), generator)
    ratio = torch.exp(log_r)
    sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop half-extent, in [-1, 1] coordinates
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (1 - sx) * (2 * torch.rand(n, device=device, generator=generator) - 1)
    ty = (1 - sy) * (2 * torch.rand(n, device=device, generator=generator) - 1)
    fx = torch.where(torch.rand(n, device=device, generator=generator) < rows("hflip"), -1.0, 1.0)
    fy = torch.where(torch.rand(n, device=device, generator=generator) < rows("vflip"), -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = sx * fx, sy * fy
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    turn = torch.rand(n, device=device, generator=generator) < 0.5 * rows("rot90")  # transpose
    theta[:, :, :2] = torch.where(turn[:, None, None], theta[:, :, :2].flip(2), theta[:, :, :2])
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _jitter_range(value: float, center: float, lo: float) -> tuple[float, float]:
    """torchvision's ColorJitter range: v -> [max(lo, center - v), center + v]."""
    return max(lo, center - value), center + value


def color_ops(x: torch.Tensor, labeled: torch.Tensor, lab: StreamAugment, unl: StreamAugment,
              generator: torch.Generator | None = None, rgb: bool = True) -> torch.Tensor:
    """Colour jitter, grayscale and blur, each with the row's stream probability and ranges. Images
    that are not RGB (rgb False: a dataset's bands, whatever their count): brightness and contrast per band, no saturation, hue
    or grayscale (`band_jitter`), blur as for RGB; the random draws are the same."""
    n = x.shape[0]
    if lab.jitter_p > 0 or unl.jitter_p > 0:
        factors = []
        for i, (center, lo) in enumerate(((1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (0.0, -0.5))):
            (llo, lhi), (ulo, uhi) = _jitter_range(lab.jitter[i], center, lo), _jitter_range(unl.jitter[i], center, lo)
            factors.append(_uniform(_per_row(labeled, llo, ulo), _per_row(labeled, lhi, uhi), generator))
        apply = torch.rand(n, device=x.device, generator=generator) < _per_row(labeled, lab.jitter_p, unl.jitter_p)
        x = jitter_with_factors(x, *factors, apply=apply) if rgb else band_jitter(x, *factors[:2], apply=apply)
    if rgb and (lab.grayscale_p > 0 or unl.grayscale_p > 0):
        x = random_grayscale(x, _per_row(labeled, lab.grayscale_p, unl.grayscale_p), generator)
    if lab.blur_p > 0 or unl.blur_p > 0:
        kernel = max(k for k, p in ((lab.blur_kernel, lab.blur_p), (unl.blur_kernel, unl.blur_p)) if p > 0)
        sigma = (_per_row(labeled, lab.blur_sigma[0], unl.blur_sigma[0]),
                 _per_row(labeled, lab.blur_sigma[1], unl.blur_sigma[1]))
        x = gaussian_blur(x, _per_row(labeled, lab.blur_p, unl.blur_p), sigma, kernel, generator)
    return x


def augment_batch(x: torch.Tensor, labeled: torch.Tensor, lab: StreamAugment, unl: StreamAugment,
                  generator: torch.Generator | None = None, rgb: bool = True) -> torch.Tensor:
    """x: (N, C, H, W) float in [0, 1] (rgb: C = 3 RGB; else a dataset's bands), labeled: (N,) bool ->
    augmented, same shape, in [0, 1]."""
    return color_ops(crop_and_flip(x, labeled, lab, unl, generator), labeled, lab, unl, generator, rgb)
