"""AdamW parameter groups: which parameters get weight decay (`train.weight_decay_on`), and the
learnable loss weight's own learning rate."""

from __future__ import annotations

from typing import Callable

from torch import nn

NO_DECAY = ("mask_token", "cls_token", "pos_embed", "reg_token")

DECAY_RULES: dict[str, Callable[[str, nn.Parameter], bool]] = {
    # weight matrices only: no decay on biases, norms, position embeddings, class and mask tokens, w
    "weights": lambda name, p: p.ndim > 1 and not any(k in name for k in NO_DECAY) and not name.startswith("weight."),
    # every parameter, w included: the authors' one AdamW group (src/trainers/mae_learner.py:142-154)
    "all": lambda name, p: True,
}


def param_groups(model: nn.Module, lr: float, weight_decay: float, w_lr: float, rule: str) -> list[dict]:
    """Groups for torch.optim.AdamW: decayed and undecayed parameters at `lr`; the learnable w
    (parameters named weight.*) at `w_lr`, decayed only when the rule says so."""
    decays = DECAY_RULES[rule]
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith("weight."), decays(name, p)), []).append(p)
    return [{"params": params, "lr": w_lr if is_w else lr, "weight_decay": weight_decay if decayed else 0.0}
            for (is_w, decayed), params in sorted(groups.items())]
