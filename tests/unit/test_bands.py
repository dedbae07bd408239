"""A dataset's bands (sslmae.bands): the data.bands rule, the statistics pass, the stretch the model
input gets, and the one-line mismatch between images and a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslmae.augment.pixels import normalize, to_unit
from sslmae.bands import Bands, BandsError, BandStats, StatsPass, check_same, default_names, select

S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def test_select_takes_all_names_or_one_based_indices_in_the_order_given():
    assert select("all", S2) == list(range(12))
    assert select(["B04", "B03", "B02", "B08"], S2) == [3, 2, 1, 7]
    assert select([4, 3, 2], S2) == [3, 2, 1]
    assert select(["B8A", 1], S2) == [8, 0]


@pytest.mark.parametrize("setting, words", [
    (["B10"], ["'B10' is not one of the source's bands", "B8A"]),
    ([13], ["band index 13 outside 1..12", "B12"]),
    ([0], ["band index 0 outside 1..12"]),
    (["B04", 4], ["named twice"]),
    ("some", ["not all, rgb or a list"]),
])
def test_a_band_the_source_lacks_is_one_line_naming_both(setting, words):
    with pytest.raises(BandsError) as err:
        select(setting, S2)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_names_come_from_the_descriptions_when_each_band_has_its_own():
    assert default_names(3, ("red", "nir", "swir")) == ("red", "nir", "swir")
    assert default_names(3, ("red", None, "swir")) == ("B1", "B2", "B3")
    assert default_names(2, ("x", "x")) == ("B1", "B2")
    assert default_names(2) == ("B1", "B2")


def test_integer_statistics_are_exact_and_skip_nodata():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 5000, (7, 3, 9, 11)).astype(np.uint16)
    tiles[0, 1, :2] = 0  # nodata in band 2 of one tile
    p = StatsPass(3, "uint16", nodata=0)
    p.add(tiles[:3])  # a batch
    for t in tiles[3:]:  # and one at a time
        p.add(t)
    got = p.result()
    for b in range(3):
        values = tiles[:, b].ravel()
        values = values[values != 0].astype(np.float64)
        assert got.mean[b] == pytest.approx(values.mean(), rel=1e-12)
        assert got.std[b] == pytest.approx(values.std(), rel=1e-9)
        assert got.p2[b] == np.percentile(values, 2, method="inverted_cdf")
        assert got.p98[b] == np.percentile(values, 98, method="inverted_cdf")
        assert got.nodata[b] == int((tiles[:, b] == 0).sum())
    assert got.nodata[1] >= 22


def test_signed_and_float_rasters_have_statistics_and_nan_is_not_counted():
    p = StatsPass(1, "int16", nodata=None)
    p.add(np.array([[[-300, -1, 0, 7]]], np.int16))
    assert p.result().p2 == (-300.0,) and p.result().p98 == (7.0,)
    f = StatsPass(1, "float32", nodata=-9999.0)
    f.add(np.array([[[0.1, 0.2, np.nan, -9999.0, 0.3]]], np.float32))
    r = f.result()
    assert r.mean[0] == pytest.approx(0.2, rel=1e-6) and r.nodata == (2,)


def _bands(p2=(100.0, 0.0), p98=(1100.0, 50.0), mean=(600.0, 25.0), std=(250.0, 10.0)):
    stats = BandStats(mean=mean, std=std, p2=p2, p98=p98, nodata=(0, 0), pixels=10)
    return Bands(("B04", "B08"), "uint16", "all", None, stats)


def test_the_model_input_is_the_stretch_between_the_percentiles_then_the_stretched_moments():
    bands = _bands()
    x = torch.tensor([[[[100.0, 600.0, 2000.0]], [[0.0, 25.0, 50.0]]]])  # (1, 2, 1, 3)
    unit = to_unit(x.clone(), bands.unit_range())
    assert torch.allclose(unit, torch.tensor([[[[0.0, 0.5, 1.0]], [[0.0, 0.5, 1.0]]]]))
    mean, std = bands.unit_moments()
    assert mean == pytest.approx((0.5, 0.5)) and std == pytest.approx((0.25, 0.2))
    assert torch.allclose(normalize(x, mean, std, bands.unit_range()), (unit - 0.5) / torch.tensor([0.25, 0.2]).view(1, 2, 1, 1))


def test_rgb_scaling_is_what_it_was():
    imgs = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(to_unit(imgs), imgs.float().div(255.0))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.equal(normalize(imgs), (imgs.float().div(255.0) - mean) / std)
    assert Bands.rgb().unit_range() is None


def test_a_constant_band_does_not_divide_by_zero():
    lo, hi = _bands(p2=(5.0, 5.0), p98=(5.0, 9.0)).unit_range()
    assert hi[0] > lo[0]


def test_bands_round_trip_through_json():
    bands = _bands()
    assert Bands.from_json(bands.to_json()) == bands
    assert Bands.from_json(Bands(("B1",), "float32", '["B1"]', -9999.0).to_json()).stats is None


def test_images_and_a_model_with_other_bands_are_one_line_naming_both():
    check_same(None, None, "x")
    check_same(_bands(), _bands(), "x")
    with pytest.raises(BandsError, match=r"data: the images have bands \['red', 'green', 'blue'\] \(uint8\), "
                                         r"the model was trained on \['B04', 'B08'\] \(uint16\)"):
        check_same(None, _bands(), "data")


def test_band_weights_weigh_each_bands_reconstruction_error_and_equal_weights_change_nothing():
    from sslmae.model.losses import l1_masked, mse_norm_pix

    torch.manual_seed(0)
    pred, target = torch.rand(2, 4, 8, 8), torch.rand(2, 4, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) < 0.5).float()
    for loss in (l1_masked, mse_norm_pix):
        assert torch.allclose(loss(pred, target, mask, 4, torch.ones(4)), loss(pred, target, mask, 4), atol=1e-6)
        only_first = loss(pred, target, mask, 4, torch.tensor([1.0, 0, 0, 0]))
        assert torch.allclose(only_first, loss(pred[:, :1], target[:, :1], mask, 4) if loss is l1_masked else only_first)
        assert not torch.allclose(only_first, loss(pred, target, mask, 4))


def test_band_weights_must_be_one_per_band():
    from sslmae.model.simmim import SimMIMSSLMAE

    with pytest.raises(ValueError, match=r"loss.band_weights: 2 weights \(summing to 2\) for 3 bands \['red', 'green', 'blue'\]"):
        SimMIMSSLMAE(num_classes=2, backbone="micro", img_size=16, patch_size=4, mask_patch_size=8, band_weights=(1.0, 1.0))


def test_statistics_beyond_the_cap_come_from_a_seeded_sample_of_whole_shards():
    from sslmae.loading.band_stats import sample_rows

    rows = np.arange(0, 1000, 2)  # the training rows: every other image
    assert np.array_equal(sample_rows(rows, 500), rows)
    picked = sample_rows(rows, 100, seed=3)
    assert len(picked) == 100 and set(picked) <= set(rows) and np.array_equal(picked, sample_rows(rows, 100, seed=3))
    shard_of = np.arange(1000) // 100  # 10 shards of 100 images, 50 training images each
    whole = sample_rows(rows, 120, shard_of)
    assert len(whole) == 150 and len(set(shard_of[whole])) == 3  # whole shards until the cap is reached
    assert all((shard_of[whole] == s).sum() == 50 for s in set(shard_of[whole]))
