"""torch.compile of the training step and the inference pass (what train.compile=auto runs on a GPU),
checked on the CPU's inductor backend."""

import pytest
import torch

from sslmae.config import load_config, to_dict
from sslmae.train.module import SSLMAEModule
from tests.unit.test_model import batch, build


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["simmim", "visible_only"])
def test_compiled_step_matches_eager(variant):
    m = build(variant, "semi_supervised").eval()
    imgs, targets, labeled = batch()
    mask = m.draw_mask(6, "cpu", torch.Generator().manual_seed(4))
    eager = m.training_losses(imgs, targets, labeled, mask)
    logits = m(imgs)
    torch._dynamo.reset()
    cfg = load_config(None)
    module = SSLMAEModule(m, cfg.train, cfg.augment, cfg.loss.w_lr, cfg.evaluate.threshold, to_dict(cfg),
                          compiled=True)  # what train.compile=auto does on a GPU
    compiled = module.step_fn(imgs, targets, labeled, mask)
    for key in ("loss", "l_rec", "l_cls"):
        assert torch.allclose(compiled[key], eager[key], atol=1e-5), key
    assert torch.allclose(module.infer_fn(imgs), logits, atol=1e-5)
    assert set(m.state_dict()) == set(module.model.state_dict())  # wrapping leaves the model's keys alone
    compiled["loss"].backward()
    assert all(p.grad is not None for p in m.encoder.parameters() if p.requires_grad)
