"""Remote-sensing ViT weights by name (`model.pretrained: rs:NAME`, and TorchGeo's `torchgeo:NAME`):
where each is published, the backbone it fits and the pixel statistics (or bands and scale) it was
pretrained with.

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


# TorchGeo's Sentinel-2 ViT-S/16 weights (torchgeo/models/vit.py at 7ea0616, ViTSmall16_Weights): SSL4EO-S12
# pretraining on 13 top-of-atmosphere bands in this order, input DN / 10000 (their transforms'
# Normalize(mean=0, std=10000)); timm's vit_small_patch16_224 with in_chans 13 (sslmae's `small`).
S2_TOA_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8a", "B9", "B10", "B11", "B12")


@dataclass(frozen=True)
class BandWeights:
    url: str
    backbone: str
    bands: tuple[str, ...]  # the input channels' bands, in order
    scale: float  # input = DN / scale


_SSL4EO = "https://hf.co/torchgeo/{0}/resolve/{1}/{0}-{2}.pth"
TORCHGEO: dict[str, BandWeights] = {
    "ViTSmall16_Weights.SENTINEL2_ALL_MOCO": BandWeights(
        _SSL4EO.format("vit_small_patch16_224_sentinel2_all_moco", "1cb683f6c14739634cdfaaceb076529adf898c74",
                       "67c9032d"), "small", S2_TOA_BANDS, 10000.0),
    "ViTSmall16_Weights.SENTINEL2_ALL_DINO": BandWeights(
        _SSL4EO.format("vit_small_patch16_224_sentinel2_all_dino", "5b41dd418a79de47ac9f5be3e035405a83818a62",
                       "36bcc127"), "small", S2_TOA_BANDS, 10000.0),
    "ViTSmall16_Weights.SENTINEL2_ALL_MAE": BandWeights(
        "https://huggingface.co/wangyi111/SSL4EO-S12/resolve/75c72195d35201dc1fb210818993518c25da566b/"
        "B13_vits16_mae_ep99_enc.pth", "small", S2_TOA_BANDS, 10000.0),
}
