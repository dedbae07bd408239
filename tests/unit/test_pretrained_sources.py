"""model.pretrained without servers: checkpoint layouts mapped onto the encoder (timm, distilled DeiT,
MAE / SatMAE), sources that cannot be had, and the weights' pixel statistics travelling with the model."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch
from timm.models.deit import VisionTransformerDistilled

from sslmae.augment.pixels import MEAN, STD, normalize
from sslmae.config import load_config, to_dict
from sslmae.inference import predict_scores
from sslmae.model.backbone import build_backbone, load_pretrained
from sslmae.model.variants import build_model
from sslmae.model.published import PUBLISHED
from sslmae.model.weights_download import WeightsError, cached_path
from sslmae.model.weights_sources import fetch_weights, scheme_of
from sslmae.train.model_file import load_model, save_model
from sslmae.train.pretrained import settle_pretrained

def micro_encoder(seed: int):
    torch.manual_seed(seed)
    return build_backbone("micro", 32, 4)


def assert_loaded(encoder, expected: dict[str, torch.Tensor]):
    for k, v in expected.items():
        assert torch.equal(encoder.state_dict()[k], v), k


def test_an_mae_pretraining_checkpoint_loads_its_encoder_and_drops_the_decoder(tmp_path):
    """SatMAE's fMoW-RGB file is an MAE run's `{"model": ...}`: timm encoder names beside the decoder."""
    src = micro_encoder(1).state_dict()
    mae = {**src, "mask_token": torch.randn(1, 1, 16), "decoder_pos_embed": torch.randn(1, 65, 16),
           "decoder_embed.weight": torch.randn(16, 32), "decoder_blocks.0.attn.qkv.weight": torch.randn(48, 16),
           "decoder_norm.weight": torch.ones(16), "decoder_pred.weight": torch.randn(48, 16)}
    torch.save({"model": mae, "epoch": 799}, tmp_path / "fmow_pretrain.pth")
    dst = micro_encoder(2)
    missing = load_pretrained(dst, tmp_path / "fmow_pretrain.pth")
    assert missing == [] and set(dst.state_dict()) == set(src)
    assert_loaded(dst, src)


def test_a_distilled_deit_loses_its_distillation_token():
    torch.manual_seed(3)
    deit = VisionTransformerDistilled(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    state = deit.state_dict()
    assert "dist_token" in state and "head_dist.weight" in state

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": state}, Path(tmp) / "deit.pth")
        dst = micro_encoder(4)
        load_pretrained(dst, Path(tmp) / "deit.pth")
    pos = state["pos_embed"]
    assert torch.equal(dst.pos_embed, torch.cat([pos[:, :1], pos[:, 2:]], dim=1))
    assert torch.equal(dst.cls_token, state["cls_token"])
    assert_loaded(dst, {k: v for k, v in state.items() if k.startswith("blocks.")})


def test_a_file_whose_keys_fit_nothing_is_refused_naming_the_source(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match=r"model.pretrained: s3://b/resnet.pth holds no weights matching"):
        load_pretrained(micro_encoder(0), tmp_path / "resnet.pth", "s3://b/resnet.pth")
    # a wider ViT's weights fit no tensor of micro either
    torch.manual_seed(0)
    wide = build_backbone("mini", 32, 4).state_dict()
    torch.save(wide, tmp_path / "mini.pth")
    with pytest.raises(ValueError, match="holds no weights matching"):
        load_pretrained(micro_encoder(0), tmp_path / "mini.pth")


@pytest.mark.parametrize("source, message", [
    ("timm:no_such_arch.tag", "timm has no pretrained weights by that name"),
    ("timm:deit_tiny_patch16_224.no_such_tag", "timm has no pretrained weights by that name"),
    ("timm", "backbone 'micro' is sslmae's own size"),
    ("rs:no-such", "unknown remote-sensing weights"),
    ("rs:satmae-fmow-rgb", "fits model.backbone=large, not micro"),
    ("hf-hub:only-an-org", "expected hf-hub:ORG/NAME"),
])
def test_sources_that_cannot_be_had_say_so_in_one_line(source, message):
    with pytest.raises(WeightsError, match=message) as info:
        fetch_weights(source, "micro")
    assert "\n" not in str(info.value) and str(info.value).startswith(f"model.pretrained: {source}")


def test_schemes_and_cache_names():
    assert [scheme_of(s) for s in ("timm", "timm:a.b", "hf-hub:o/n", "s3://b/k", "https://h/f", "rs:x", "w.pth",
                                   "C:/w.pth")] == ["timm", "timm", "hf-hub", "s3", "https", "rs", None, None]
    # a presigned URL's signature changes; its cache file does not
    assert cached_path("https://h/a/w.pth?X-Amz-Signature=1") == cached_path("https://h/a/w.pth?X-Amz-Signature=2")
    assert cached_path("https://h/a/w.pth") != cached_path("https://h/b/w.pth")
    assert cached_path("https://h/a/w.pth").name.endswith("-w.pth")
    assert PUBLISHED["satmae-fmow-rgb"].mean != MEAN  # fMoW-RGB statistics, not ImageNet's


def test_a_local_file_is_settled_with_its_sha256_and_imagenet_statistics(tmp_path):
    torch.save(micro_encoder(5).state_dict(), tmp_path / "w.pth")
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "data.img_size=32",
                             f"model.pretrained={tmp_path / 'w.pth'}"])
    settled, provenance = settle_pretrained(cfg)
    assert provenance == {"source": str(tmp_path / "w.pth"), "revision": "", "file": "w.pth",
                          "sha256": hashlib.sha256((tmp_path / "w.pth").read_bytes()).hexdigest()}
    assert settled.model.pixel_mean is None  # a plain file states no statistics: ImageNet's
    assert settle_pretrained(load_config(None, []))[1] is None


def test_pixel_statistics_travel_with_the_model_file(tmp_path):
    """The weights' statistics normalise training, evaluation and prediction alike, via the model file."""
    stats = [0.4, 0.42, 0.4], [0.29, 0.28, 0.28]
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             "data.img_size=32", f"model.pixel_mean={stats[0]}", f"model.pixel_std={stats[1]}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.loss, cfg.data.task, cfg.data.img_size, 3).eval()
    assert model.pixel_mean == tuple(stats[0])
    save_model(tmp_path / "model.pt", model, cfg, ["a", "b", "c"])
    loaded, loaded_cfg, _, _ = load_model(tmp_path / "model.pt")
    assert loaded.pixel_mean == tuple(stats[0]) and loaded.pixel_std == tuple(stats[1])
    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    scores, _ = predict_scores(loaded, [(imgs, torch.zeros(4, 3))], torch.device("cpu"))
    with torch.no_grad():
        own = torch.sigmoid(model(normalize(imgs, *stats))).numpy()
        imagenet = torch.sigmoid(model(normalize(imgs))).numpy()
    np.testing.assert_allclose(scores, own, atol=1e-6)
    assert not np.allclose(scores, imagenet, atol=1e-4)
    # a model file written before the statistics were a knob loads with ImageNet's
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    for key in ("pixel_mean", "pixel_std"):
        del payload["config"]["model"][key]
    torch.save(payload, tmp_path / "old.pt")
    old, _, _, _ = load_model(tmp_path / "old.pt")
    assert (old.pixel_mean, old.pixel_std) == (MEAN, STD)
    assert to_dict(loaded_cfg)["model"]["pixel_mean"] == stats[0]


def test_pipeline_steps_cache_weights_on_the_scratch_volume(monkeypatch):
    from sslmae.kubeflow.steps import scratch_dir, weights_caches
    from sslmae.model.weights_sources import hub_cache_dir

    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", "/staged/torch")  # a pod's own setting wins
    weights_caches()
    assert os.environ["HF_HOME"] == str(scratch_dir() / "weights" / "huggingface")
    assert os.environ["TORCH_HOME"] == "/staged/torch"
    # huggingface_hub read HF_HOME at import; the cache sslmae hands it follows the variable now
    assert hub_cache_dir() == os.path.join(os.environ["HF_HOME"], "hub")
