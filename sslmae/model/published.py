"""Remote-sensing ViT weights by name (`model.pretrained: rs:NAME`): where each is published, the
backbone it fits and the pixel statistics it was pretrained with.

`satmae-fmow-rgb`: SatMAE (Cong et al., NeurIPS 2022, github.com/sustainlab-group/SatMAE), the
non-temporal ViT-L/16 MAE pretrained 800 epochs on fMoW-RGB. The file is an MAE pretraining
checkpoint, `{"model": {...}}` with timm encoder names plus the MAE decoder and mask token,
which sslmae.model.checkpoint_keys drops. Its statistics are fMoW-RGB's, from SatMAE's
`util/datasets.py` (CustomDatasetFromImages), not ImageNet's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    url: str
    backbone: str  # the sslmae model.backbone whose architecture the weights are
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


PUBLISHED: dict[str, Published] = {
    "satmae-fmow-rgb": Published(
        url="https://zenodo.org/record/7369797/files/fmow_pretrain.pth",
        backbone="large",
        mean=(0.4182007312774658, 0.4214799106121063, 0.3991275727748871),
        std=(0.28774282336235046, 0.27541765570640564, 0.2764017581939697),
    ),
}
