"""Batch photometric augmentation (sslmae.augment.color) against torchvision's functional ops."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from sslmae.augment import color as C


def batch(n: int = 6, size: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def quantised(n: int = 6, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Few levels per channel: many gray pixels and ties between channels (hue edge cases)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, 3, size, size), generator=g).float() / 3.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


RANDOM_OPS = {
    "color_jitter": lambda x, g: C.color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=g, p=0.8),
    "random_grayscale": lambda x, g: C.random_grayscale(x, 0.5, generator=g),
    "gaussian_blur": lambda x, g: C.gaussian_blur(x, 0.5, generator=g),
}


# -- contract: shape, dtype, range, determinism, identity at p = 0 -----------------------


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_shape_dtype_range_and_input_untouched(name):
    x = batch(8)
    before = x.clone()
    y = RANDOM_OPS[name](x, gen(1))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", RANDOM_OPS)
def test_seeded_generator_is_deterministic(name):
    x = batch(16)
    a, b = RANDOM_OPS[name](x, gen(7)), RANDOM_OPS[name](x, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, RANDOM_OPS[name](x, gen(8)))


def test_p_zero_is_identity():
    x = batch(8)
    assert torch.equal(C.color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=gen(0), p=0.0), x)
    assert torch.equal(C.random_grayscale(x, 0.0, generator=gen(0)), x)
    assert torch.equal(C.gaussian_blur(x, 0.0, generator=gen(0)), x)


def test_all_off_jitter_is_identity():
    x = batch(4)
    assert torch.equal(C.color_jitter(x, 0, 0, 0, 0, generator=gen(0)), x)


def test_jitter_p_leaves_unselected_images_exactly_unchanged():
    x = batch(64)
    y = C.color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=gen(3), p=0.5)
    same = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert 10 < int(same.sum()) < 54  # some kept bit for bit, some jittered


# -- grayscale -----------------------------------------------------------------------------


def test_grayscale_rows_have_equal_channels_equal_to_luma():
    x = batch(64)
    y = C.random_grayscale(x, 0.5, generator=gen(2))
    gray = (y[:, 0] == y[:, 1]).all(dim=(1, 2)) & (y[:, 1] == y[:, 2]).all(dim=(1, 2))
    assert 10 < int(gray.sum()) < 54
    assert torch.allclose(y[gray], TF.rgb_to_grayscale(x[gray], 3), atol=1e-6)
    assert torch.equal(y[~gray], x[~gray])  # the others untouched


def test_grayscale_frequency_follows_p():
    x = torch.rand(4000, 3, 2, 2, generator=gen(0))
    y = C.random_grayscale(x, 0.2, generator=gen(1))
    frac = (y[:, 0] == y[:, 1]).all(dim=(1, 2)).float().mean().item()
    assert 0.17 < frac < 0.23


# -- explicit-factor helpers match torchvision ------------------------------------------


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.0, 1.4, 2.5])
def test_brightness_matches_torchvision(factor):
    x = batch()
    assert torch.allclose(C.adjust_brightness(x, factor), TF.adjust_brightness(x, factor), atol=1e-6)


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.0, 1.4])
def test_contrast_and_saturation_match_torchvision(factor):
    x = batch()
    assert torch.allclose(C.adjust_contrast(x, factor), TF.adjust_contrast(x, factor), atol=1e-5)
    assert torch.allclose(C.adjust_saturation(x, factor), TF.adjust_saturation(x, factor), atol=1e-5)


@pytest.mark.parametrize("shift", [-0.5, -0.1, 0.0, 0.05, 0.1, 0.33, 0.5])
@pytest.mark.parametrize("make", [batch, quantised])
def test_hue_matches_torchvision(shift, make):
    x = make()
    assert torch.allclose(C.adjust_hue(x, shift), TF.adjust_hue(x, shift), atol=1e-5)


def test_per_image_factors_match_one_call_per_image():
    x = batch(4)
    f = torch.tensor([0.6, 0.9, 1.2, 1.4])
    h = torch.tensor([-0.1, -0.02, 0.04, 0.1])
    cases = [
        (C.adjust_brightness, TF.adjust_brightness, f),
        (C.adjust_contrast, TF.adjust_contrast, f),
        (C.adjust_saturation, TF.adjust_saturation, f),
        (C.adjust_hue, TF.adjust_hue, h),
    ]
    for ours, theirs, factors in cases:
        want = torch.stack([theirs(x[i], float(factors[i])) for i in range(len(x))])
        assert torch.allclose(ours(x, factors), want, atol=1e-5), ours.__name__


def test_jitter_draws_factors_in_torchvision_ranges():
    x = torch.full((512, 3, 2, 2), 0.25)
    y = C.color_jitter(x, brightness=0.4, generator=gen(0))
    factor = y[:, 0, 0, 0] / 0.25
    assert factor.min() >= 0.6 - 1e-6 and factor.max() <= 1.4 + 1e-6
    assert factor.min() < 0.65 and factor.max() > 1.35  # the whole range is used
    # explicit (min, max) ranges, as torchvision accepts
    y = C.color_jitter(x, brightness=(2.0, 3.0), generator=gen(0))
    assert ((y[:, 0, 0, 0] >= 0.5 - 1e-6) & (y[:, 0, 0, 0] <= 0.75 + 1e-6)).all()


def test_jitter_hue_only_changes_hue_not_value():
    x = batch(16)
    y = C.color_jitter(x, hue=0.5, generator=gen(0))
    # a hue rotation keeps max and min of each pixel (value and chroma)
    assert torch.allclose(y.amax(1), x.amax(1), atol=1e-5)
    assert torch.allclose(y.amin(1), x.amin(1), atol=1e-5)
    assert not torch.allclose(y, x, atol=1e-2)


# -- blur -------------------------------------------------------------------------------


def test_blur_matches_torchvision_per_image_sigma():
    x = batch(3, 32)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    for taps in (5, 23):  # the authors' 5 taps, and a kernel wider than the image's eighth
        want = torch.stack([TF.gaussian_blur(x[i], [taps, taps], [float(sigma[i])] * 2) for i in range(3)])
        assert torch.allclose(C.blur(x, sigma, taps), want, atol=1e-5)


def test_blur_tiny_sigma_is_identity_and_large_sigma_smooths():
    x = batch(8, 32)
    near = C.gaussian_blur(x, 1.0, sigma=(0.1, 0.1), generator=gen(0))
    assert torch.allclose(near, x, atol=1e-6)
    smooth = C.gaussian_blur(x, 1.0, sigma=(2.0, 2.0), generator=gen(0))
    assert (smooth.var(dim=(1, 2, 3)) < 0.2 * x.var(dim=(1, 2, 3))).all()
    assert torch.allclose(smooth.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)  # no energy lost


def test_blur_default_kernel_is_the_authors_5_taps():
    x = batch(4, 48)
    a = C.gaussian_blur(x, 1.0, generator=gen(0))
    b = C.gaussian_blur(x, 1.0, kernel_size=5, generator=gen(0))
    assert torch.equal(a, b)


def test_per_image_probabilities_and_sigma_bounds():
    x = batch(64, 16)
    p = torch.tensor([0.0] * 32 + [1.0] * 32)
    y = C.gaussian_blur(x, p, sigma=(torch.full((64,), 1.0), torch.full((64,), 2.0)), generator=gen(1))
    assert torch.equal(y[:32], x[:32]) and not any(torch.equal(y[i], x[i]) for i in range(32, 64))
    g = C.random_grayscale(x, p, generator=gen(2))
    assert torch.equal(g[:32], x[:32]) and torch.equal(g[32:, 0], g[32:, 1])


def test_blur_applies_to_a_subset_with_probability_p():
    x = batch(64, 16)
    y = C.gaussian_blur(x, 0.5, sigma=(1.0, 2.0), generator=gen(4))
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert 10 < int(kept.sum()) < 54


# -- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda x: C.color_jitter(x, hue=0.6),
        lambda x: C.color_jitter(x, brightness=-0.1),
        lambda x: C.color_jitter(x, brightness=0.4, p=1.5),
        lambda x: C.random_grayscale(x, -0.1),
        lambda x: C.gaussian_blur(x, 0.5, sigma=(0.0, 1.0)),
        lambda x: C.gaussian_blur(x, 0.5, kernel_size=4),
        lambda x: C.gaussian_blur(x, 1.0, kernel_size=99),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call(batch(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_with_a_device_generator():
    x = batch(8).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    y = C.gaussian_blur(C.random_grayscale(C.color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=g), 0.2, generator=g), 0.5, generator=g)
    assert y.device == x.device and y.shape == x.shape
    cpu = C.adjust_hue(x.cpu(), 0.1)
    assert torch.allclose(C.adjust_hue(x, 0.1).cpu(), cpu, atol=1e-5)
