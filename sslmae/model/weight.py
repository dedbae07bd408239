"""The adaptive weight w of L = (1 - w) * L_rec + w * L_cls."""

from __future__ import annotations

import math

import torch
from torch import nn


class LossWeight(nn.Module):
    """Fixed w (SSL-MAE-GS) or learnable w = sigmoid(theta) (SSL-MAE-w_l).

    Learnable: theta starts at logit(w0), so w starts at w0 and always stays in (0, 1).
    """

    def __init__(self, w0: float, learnable: bool):
        super().__init__()
        self.learnable = learnable
        if learnable:
            w0 = min(max(w0, 1e-4), 1 - 1e-4)
            self.theta = nn.Parameter(torch.tensor(math.log(w0 / (1 - w0))))
        else:
            self.register_buffer("fixed", torch.tensor(float(w0)), persistent=True)

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.theta) if self.learnable else self.fixed
