"""Model contracts, parametrised over every registered variant x mode x task (as timm tests its
registry): shapes, what each loss may see, gradients, the weight w; the one patch layout."""

import pytest
import torch

from sslmae.model.losses import CLS_LOSSES, l1_masked, mse_norm_pix
from sslmae.model.masks import mask_to_pixels, random_patch_mask
from sslmae.model.modes import MODES
from sslmae.model.patches import patchify, unpatchify
from sslmae.model.simmim import SimMIMSSLMAE as SSLMAE
from sslmae.model.variants import VARIANTS
from sslmae.model.visible import VisibleOnlySSLMAE

C = 5


def make(mode="semi_supervised", learn_w=False, task="mlc", rec_loss="l1", drop_path=0.0, **kw):
    torch.manual_seed(0)
    return SSLMAE(num_classes=C, task=task, mode=mode, backbone="micro", img_size=32, patch_size=4,
                  mask_ratio=0.5, mask_patch_size=8, rec_loss=rec_loss, w=0.3, learn_w=learn_w,
                  drop_path=drop_path, **kw)


def batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randn(n, 3, 32, 32, generator=g)
    targets = (torch.rand(n, C, generator=g) > 0.5).float()
    labeled = torch.tensor([True, False] * (n // 2))
    return imgs, targets, labeled


# ---------------------------------------------------------------- every registered variant x mode x task

CASES = [(v, m, t) for v in VARIANTS for m in MODES for t in CLS_LOSSES]


def build(variant: str, mode: str, task: str = "mlc", learn_w: bool = False):
    torch.manual_seed(0)
    kw = {"decoder_dim": 16, "decoder_depth": 1} if variant == "visible_only" else {}
    return VARIANTS[variant](num_classes=C, task=task, mode=mode, backbone="micro", img_size=32, patch_size=4,
                             mask_ratio=0.5, mask_patch_size=8, w=0.3, learn_w=learn_w, drop_path=0.0, **kw)


def rows(mode: str, task: str, n: int = 6):
    imgs, targets, labeled = batch(n)
    if task == "mcc":
        targets = torch.nn.functional.one_hot(torch.arange(n) % C, C).float()
    if not MODES[mode].unlabeled:
        labeled = torch.ones(n, dtype=torch.bool)
    return imgs, targets, labeled


@pytest.mark.parametrize("variant, mode, task", CASES)
def test_contract_shapes_and_finite_losses(variant, mode, task):
    m = build(variant, mode, task).eval()
    imgs, targets, labeled = rows(mode, task)
    assert m(imgs).shape == (6, C)  # inference: the whole image, no mask
    mask = m.draw_mask(6, "cpu")
    assert mask.shape == (6, 64) and mask.dtype == torch.bool and int((~mask).sum(1).unique()) == m.num_visible
    out = m.training_losses(imgs, targets, labeled, mask)
    for k in ("loss", "l_rec", "l_cls", "w"):
        assert out[k].ndim == 0 and torch.isfinite(out[k]), k
    if MODES[mode].reconstruct:
        assert out["recon"].shape == imgs.shape and m.decoder is not None
    else:
        assert out["recon"] is None and float(out["l_rec"]) == 0 and torch.allclose(out["loss"], out["l_cls"])


@pytest.mark.parametrize("variant, mode, task", CASES)
def test_contract_every_parameter_gets_a_gradient(variant, mode, task):
    learn_w = MODES[mode].reconstruct
    m = build(variant, mode, task, learn_w=learn_w).train()
    imgs, targets, labeled = rows(mode, task)
    m.training_losses(imgs, targets, labeled)["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert missing == []  # the baseline masks its input too (the authors'), so even it uses a mask token
    if learn_w:
        assert m.weight.theta.grad is not None and m.weight.theta.grad != 0


@pytest.mark.parametrize("variant, mode, task", CASES)
def test_contract_masked_pixels_never_reach_the_classifier(variant, mode, task):
    m = build(variant, mode, task).eval()
    imgs, targets, labeled = rows(mode, task)
    mask = m.draw_mask(6, "cpu", torch.Generator().manual_seed(3))
    l_cls = m.training_losses(imgs, targets, labeled, mask)["l_cls"]
    hidden = imgs + mask_to_pixels(mask, 4).float() * 5.0
    assert torch.allclose(m.training_losses(hidden, targets, labeled, mask)["l_cls"], l_cls, atol=1e-6)


def test_patchify_and_unpatchify_are_inverse_and_torch_s_pixel_shuffle_layout():
    x = torch.randn(2, 3, 16, 16)
    p = patchify(x, 4)
    assert p.shape == (2, 16, 48) and torch.equal(unpatchify(p, 4), x)
    # patch (row 1, col 2), channel 1, pixel (i=3, j=0): at (c, i, j) -> c*p*p + i*p + j
    assert p[0, 1 * 4 + 2, 1 * 16 + 3 * 4 + 0] == x[0, 1, 1 * 4 + 3, 2 * 4 + 0]


def test_the_mae_decoder_starts_where_its_earlier_patch_order_did(monkeypatch):
    """A seed trains the visible_only decoder exactly as before it used `unpatchify`: from the same
    seed, every output pixel gets the initial weights it got in the earlier (i, j, c) order."""
    from sslmae.model.mae_decoder import MAEDecoder

    def decoder():
        torch.manual_seed(0)
        return MAEDecoder(embed_dim=8, num_patches=16, patch_size=4, dim=8, depth=1)

    now = decoder()
    monkeypatch.setattr(MAEDecoder, "_rows_in_patch_order", lambda self, p, c: None)
    drawn = decoder().pred  # the weights as drawn, which the earlier decoder used as they were
    x, p, c = torch.randn(2, 16, 8), 4, 3
    earlier = drawn(x).reshape(2, 4, 4, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(2, c, 16, 16)
    assert torch.equal(unpatchify(now.pred(x), p), earlier)


def test_mask_ratio_and_coarse_grid():
    mask = random_patch_mask(10, img_size=32, patch_size=4, mask_patch_size=8, ratio=0.5)
    assert (mask.sum(1) == 32).all()  # 16 coarse cells, 8 masked, each 2x2 patches
    grid = mask.view(10, 8, 8)
    assert torch.equal(grid[:, ::2, ::2], grid[:, 1::2, 1::2])  # coarse cells are whole
    with pytest.raises(ValueError):
        random_patch_mask(1, 32, 4, 6, 0.5)


def test_reconstruction_loss_counts_masked_pixels_only():
    imgs, _, _ = batch()
    mask = random_patch_mask(6, 32, 4, 8, 0.5)
    pm = mask_to_pixels(mask, 4).float()
    pred = torch.randn_like(imgs)
    for loss in (l1_masked, mse_norm_pix):
        base = loss(pred, imgs, pm, 4)
        # change predictions only where pixels are visible: the loss must not move
        tampered = pred + (1 - pm) * 100.0
        assert torch.allclose(loss(tampered, imgs, pm, 4), base)
        # change a masked pixel: it must move
        assert not torch.allclose(loss(pred + pm * 1.0, imgs, pm, 4), base)
    # l1 value by hand
    expect = ((pred - imgs).abs() * pm).sum() / (pm.sum() * 3)
    assert torch.allclose(l1_masked(pred, imgs, pm, 4), expect)


def test_classifier_sees_only_unmasked_tokens_of_labeled_rows():
    m = make().eval()  # eval: no drop path, deterministic
    imgs, targets, labeled = batch()
    mask = m.draw_mask(6, "cpu", torch.Generator().manual_seed(3))
    l_cls = m.training_losses(imgs, targets, labeled, mask)["l_cls"]
    # 1) change the pixels of a masked patch of a labeled row
    pm = mask_to_pixels(mask, 4).float()
    changed = imgs + pm * 5.0
    assert torch.allclose(m.training_losses(changed, targets, labeled, mask)["l_cls"], l_cls, atol=1e-6)
    # 2) change an unlabeled row's image and its label
    imgs2, targets2 = imgs.clone(), targets.clone()
    imgs2[1] = torch.randn(3, 32, 32)
    targets2[1] = 1 - targets2[1]
    assert torch.allclose(m.training_losses(imgs2, targets2, labeled, mask)["l_cls"], l_cls, atol=1e-6)
    # 3) a visible patch of a labeled row does matter
    vis = (1 - pm) * 5.0
    imgs3 = imgs.clone()
    imgs3[0] = imgs[0] + vis[0]
    assert not torch.allclose(m.training_losses(imgs3, targets, labeled, mask)["l_cls"], l_cls)
    # 4) a labeled row's label matters
    t4 = targets.clone()
    t4[0] = 1 - t4[0]
    assert not torch.allclose(m.training_losses(imgs, t4, labeled, mask)["l_cls"], l_cls)


def test_learnable_w_stays_in_unit_interval_and_moves():
    m = make(learn_w=True).train()
    assert abs(float(m.weight().detach()) - 0.3) < 1e-5  # starts at the configured w
    opt = torch.optim.SGD([m.weight.theta], lr=50.0)
    imgs, targets, labeled = batch()
    seen = []
    for _ in range(20):
        opt.zero_grad()
        m.training_losses(imgs, targets, labeled)["loss"].backward()
        opt.step()
        seen.append(float(m.weight().detach()))
    assert all(0.0 <= w <= 1.0 for w in seen)
    assert abs(seen[-1] - 0.3) > 1e-3
    # the joint objective uses w as stated
    out = m.training_losses(imgs, targets, labeled)
    assert torch.allclose(out["loss"], (1 - out["w"]) * out["l_rec"] + out["w"] * out["l_cls"])


def test_supervised_baseline_has_no_reconstruction_term():
    m = make(mode="supervised_baseline").eval()
    assert m.decoder is None
    imgs, targets, _ = batch()
    labeled = torch.ones(6, dtype=torch.bool)
    out = m.training_losses(imgs, targets, labeled)
    assert out["recon"] is None and float(out["l_rec"]) == 0.0
    assert torch.allclose(out["loss"], out["l_cls"])
    # baseline_mask false: the loss is plain classification of the full image
    whole = make(mode="supervised_baseline", baseline_mask=False).eval()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(whole(imgs), targets)
    assert torch.allclose(whole.training_losses(imgs, targets, labeled)["loss"], expected, atol=1e-6)


def test_mcc_uses_softmax_cross_entropy():
    m = make(task="mcc").eval()
    imgs, _, _ = batch()
    targets = torch.nn.functional.one_hot(torch.arange(6) % C, C).float()
    labeled = torch.ones(6, dtype=torch.bool)
    mask = m.draw_mask(6, "cpu")
    out = m.training_losses(imgs, targets, labeled, mask)
    logits = m.classify(m.encode_masked(imgs, mask), ~mask)
    assert torch.allclose(out["l_cls"], torch.nn.functional.cross_entropy(logits, targets.argmax(1)), atol=1e-6)


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = make()
    state = {f"module.{k}": v for k, v in src.encoder.state_dict().items()}
    torch.save({"model": state}, tmp_path / "w.pth")
    save_file(src.encoder.state_dict(), str(tmp_path / "w.safetensors"))
    for name in ("w.pth", "w.safetensors"):
        torch.manual_seed(123)
        dst = SSLMAE(num_classes=C, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8,
                     pretrained=str(tmp_path / name))
        for k, v in src.encoder.state_dict().items():
            assert torch.equal(dst.encoder.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match="model.pretrained"):
        SSLMAE(num_classes=C, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8,
               pretrained=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        SSLMAE(num_classes=C, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8,
               pretrained=str(tmp_path / "junk.pth"))


# ---------------------------------------------------------------- visible_only (MAE-style extension)


def make_visible(learn_w=False):
    torch.manual_seed(0)
    return VisibleOnlySSLMAE(num_classes=C, backbone="micro", img_size=32, patch_size=4,
                  mask_patch_size=8, mask_ratio=0.5, w=0.3, learn_w=learn_w, decoder_dim=16, decoder_depth=1)


def test_visible_only_contracts():
    m = make_visible().eval()
    imgs, targets, labeled = batch()
    mask = m.draw_mask(6, "cpu", torch.Generator().manual_seed(5))
    visible = m.encode_visible(imgs, mask)
    assert visible.shape == (6, 32, 32)  # half of the 64 patches, micro width 32
    out = m.training_losses(imgs, targets, labeled, mask)
    assert out["recon"].shape == imgs.shape and torch.isfinite(out["loss"])
    pm = mask_to_pixels(mask, 4).float()
    # masked pixels of any row cannot reach the head; an unlabeled row's label cannot either
    changed = imgs + pm * 5.0
    t2 = targets.clone()
    t2[1] = 1 - t2[1]
    assert torch.allclose(m.training_losses(changed, t2, labeled, mask)["l_cls"], out["l_cls"], atol=1e-6)
    # the decoder output at visible pixels does not enter the reconstruction loss
    recon = out["recon"].detach()
    assert torch.allclose(l1_masked(recon + (1 - pm) * 9, imgs, pm, 4), l1_masked(recon, imgs, pm, 4))
    assert m(imgs).shape == (6, C)  # inference: every patch, no mask


@pytest.mark.parametrize("task", ["mlc", "mcc"])
def test_weighted_classification_loss_is_the_mean_over_labeled_rows(task):
    from sslmae.model.losses import CLS_LOSSES

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, C, generator=g)
    targets = (torch.rand(6, C, generator=g) > 0.5).float()
    if task == "mcc":
        targets = torch.eye(C)[torch.randint(0, C, (6,), generator=g)]
    labeled = torch.tensor([True, False, True, False, False, True])
    loss = CLS_LOSSES[task]
    assert torch.allclose(loss(logits, targets, labeled), loss(logits[labeled], targets[labeled]), atol=1e-6)
    assert loss(logits, targets, torch.zeros(6, dtype=torch.bool)) == 0  # no labeled row: no term


def test_visible_index_matches_boolean_selection():
    from sslmae.model.masks import visible_count, visible_index

    mask = random_patch_mask(5, 32, 4, 8, 0.6, generator=torch.Generator().manual_seed(2))
    n_visible = visible_count(32, 4, 8, 0.6)
    assert int((~mask).sum(1).unique()) == n_visible
    x = torch.randn(5, 64, 7)
    keep = visible_index(mask, n_visible)
    gathered = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, 7))
    assert torch.equal(gathered, x[~mask].reshape(5, n_visible, 7))


@pytest.mark.parametrize("encoder", ["simmim", "visible_only"])
def test_training_step_is_one_graph_without_data_dependent_shapes(encoder):
    """No graph breaks: nothing in the step waits on the host (no .any(), no x[bool_mask]),
    so on a GPU the step queues without syncs and torch.compile sees it whole."""
    import torch._dynamo

    m = make() if encoder == "simmim" else make_visible()
    imgs, targets, labeled = batch()
    torch._dynamo.reset()
    explained = torch._dynamo.explain(m.training_losses)(imgs, targets, labeled)
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_count == 1


