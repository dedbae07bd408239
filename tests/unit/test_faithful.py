"""Each knob that matches the authors' code (recipes/authors.yaml, docs/method.md) changes what
it says it changes, and only that."""


import pytest
import torch

from sslmae.augment.batch import augment_batch
from sslmae.augment.streams import AUTHORS_LABELED, AUTHORS_UNLABELED, StreamAugment
from sslmae.config import load_config
from sslmae.model.masks import mask_to_pixels, masked_cells, random_patch_mask
from sslmae.model.optim import param_groups
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.model.visible import VisibleOnlySSLMAE

STILL = StreamAugment(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], hflip=0.0, vflip=0.0, rot90=False,
                      jitter=[0.0, 0.0, 0.0, 0.0], jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, blur_kernel=5,
                      blur_sigma=[0.1, 2.0])


def images(n=16, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- augmentation per stream

def test_colour_ops_change_unlabeled_rows_and_leave_labeled_rows_alone():
    x = images()
    labeled = torch.tensor([False] * 8 + [True] * 8)
    colour_only = STILL.model_copy(update={"jitter": [0.4, 0.4, 0.2, 0.1], "jitter_p": 1.0,
                                   "grayscale_p": 0.5, "blur_p": 1.0})
    y = augment_batch(x, labeled, STILL, colour_only, gen(1))
    assert torch.allclose(y[8:], x[8:], atol=1e-6)  # labeled: untouched (the identity warp only)
    assert all((y[i] - x[i]).abs().max() > 0.01 for i in range(8))  # unlabeled: every row changed
    assert y.min() >= 0 and y.max() <= 1


def test_flips_follow_each_rows_stream():
    x = images()
    labeled = torch.tensor([False] * 8 + [True] * 8)
    vflip_only = STILL.model_copy(update={"vflip": 1.0})
    y = augment_batch(x, labeled, STILL, vflip_only, gen(2))
    assert torch.allclose(y[:8], x[:8].flip(2), atol=1e-5) and torch.allclose(y[8:], x[8:], atol=1e-5)
    hflip_labeled = STILL.model_copy(update={"hflip": 1.0})
    y = augment_batch(x, labeled, hflip_labeled, STILL, gen(2))
    assert torch.allclose(y[8:], x[8:].flip(3), atol=1e-5) and torch.allclose(y[:8], x[:8], atol=1e-5)


def test_rot90_adds_transposes_the_authors_never_make():
    x = images(64)
    labeled = torch.zeros(64, dtype=torch.bool)
    turned = STILL.model_copy(update={"rot90": True})
    y = augment_batch(x, labeled, STILL, turned, gen(3))
    transposed = [torch.allclose(y[i], x[i].transpose(1, 2), atol=1e-5) for i in range(64)]
    assert 10 < sum(transposed) < 54
    assert not any(torch.allclose(augment_batch(x, labeled, STILL, STILL, gen(3))[i], x[i].transpose(1, 2))
                   for i in range(4))


def test_crop_scale_bounds_the_zoom():
    x = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(256, 3, 64, 64).contiguous()  # a horizontal ramp
    labeled = torch.zeros(256, dtype=torch.bool)
    narrow = STILL.model_copy(update={"crop_scale": [0.16, 0.16]})  # 40 % of the side
    y = augment_batch(x, labeled, STILL, narrow, gen(4))
    span = y[:, 0, 32, -1] - y[:, 0, 32, 0]  # the ramp range a row of the crop covers
    assert (span < 0.6).all() and (span > 0.2).all()


def test_authors_presets_are_the_defaults():
    cfg = load_config(None)
    assert cfg.augment.labeled == AUTHORS_LABELED and cfg.augment.unlabeled == AUTHORS_UNLABELED


# ---------------------------------------------------------------- masks, head, targets, baseline

def test_mask_count_ceil_or_round():
    assert masked_cells(112, 16, 0.6, "ceil") == 30 and masked_cells(112, 16, 0.6, "round") == 29  # 49 cells
    assert masked_cells(224, 16, 0.75, "ceil") == 147  # the authors' UCM setting: 196 cells
    for count, k in (("ceil", 30), ("round", 29)):
        mask = random_patch_mask(4, 112, 16, 16, 0.6, count=count)
        assert (mask.sum(1) == k).all()


def model(cls=SimMIMSSLMAE, **kw):
    torch.manual_seed(0)
    return cls(num_classes=5, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8, mask_ratio=0.5, **kw)


def test_mlp_head_is_the_authors():
    m = model(head="mlp")
    assert [type(layer).__name__ for layer in m.head] == ["LayerNorm", "Linear", "GELU", "Linear"]
    assert m.head[1].weight.shape == (32, 32) and m.head[3].weight.shape == (5, 32)
    assert model().head.weight.shape == (5, 32)  # linear: the paper's one FC layer


def test_rec_target_raw_reconstructs_the_unnormalised_pixels():
    raw = images(4)
    imgs = (raw - 0.45) / 0.22
    targets, labeled = torch.zeros(4, 5), torch.ones(4, dtype=torch.bool)
    mask = random_patch_mask(4, 32, 4, 8, 0.5, generator=gen(0))
    pm = mask_to_pixels(mask, 4).float()
    for target, want in (("raw", raw), ("normalized", imgs)):
        m = model(rec_target=target)
        out = m.training_losses(imgs, targets, labeled, mask, raw=raw)
        expected = ((out["recon"] - want).abs() * pm).sum() / (pm.sum() * 3)
        assert torch.allclose(out["l_rec"], expected, atol=1e-6), target


@pytest.mark.parametrize("cls", [SimMIMSSLMAE, VisibleOnlySSLMAE])
def test_baseline_mask_hides_the_masked_pixels_from_the_head(cls):
    imgs, targets, labeled = images(4), torch.ones(4, 5), torch.ones(4, dtype=torch.bool)
    mask = random_patch_mask(4, 32, 4, 8, 0.5, generator=gen(1))
    changed = imgs + mask_to_pixels(mask, 4).float() * 5.0
    masked = model(cls, mode="supervised_baseline", baseline_mask=True).eval()
    same = masked.training_losses(imgs, targets, labeled, mask)["l_cls"]
    assert torch.allclose(masked.training_losses(changed, targets, labeled, mask)["l_cls"], same, atol=1e-6)
    whole = model(cls, mode="supervised_baseline", baseline_mask=False).eval()
    base = whole.training_losses(imgs, targets, labeled, mask)["l_cls"]
    assert not torch.allclose(whole.training_losses(changed, targets, labeled, mask)["l_cls"], base)


# ---------------------------------------------------------------- optimiser, pairing

def test_weight_decay_on_every_parameter_or_on_weights_only():
    m = model(learn_w=True)
    every = param_groups(m, 1e-4, 1e-6, 1e-3, "all")
    assert all(g["weight_decay"] == 1e-6 for g in every)
    assert sum(len(g["params"]) for g in every) == sum(1 for p in m.parameters() if p.requires_grad)
    weights = param_groups(m, 1e-4, 0.05, 1e-3, "weights")
    decayed = {id(p) for g in weights if g["weight_decay"] for p in g["params"]}
    assert id(m.mask_token) not in decayed and id(m.weight.theta) not in decayed
    assert id(m.encoder.blocks[0].attn.qkv.weight) in decayed and id(m.encoder.blocks[0].attn.qkv.bias) not in decayed
    assert [g["lr"] for g in weights if any(p is m.weight.theta for p in g["params"])] == [1e-3]






# ---------------------------------------------------------------- selection and early stopping



# ---------------------------------------------------------------- sslmae config



