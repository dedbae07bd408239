"""Torch dataset over an image table: decodes files to fixed-size uint8 tensors.

Workers only decode and resize; augmentation and normalisation happen per batch on the
training device (`sslmae.data.augment`), which keeps the CPU loaders cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


def load_image(path: Path, size: int) -> torch.Tensor:
    """Decode `path` to (3, size, size) uint8 RGB (bilinear resize when needed)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class ImageTableDataset(Dataset):
    """Item i: (image (3, S, S) uint8, target (C,) float32, labeled () bool).

    `labeled[i]` False marks an image whose labels the model must not see (the unlabeled
    pool); its target is returned as zeros so no label information can leak.
    """

    def __init__(self, paths: list[Path], labels: np.ndarray, labeled: np.ndarray, img_size: int):
        if not (len(paths) == len(labels) == len(labeled)):
            raise ValueError("paths, labels and labeled must have the same length")
        self.paths = list(paths)
        self.labeled = np.asarray(labeled, dtype=bool)
        self.targets = torch.as_tensor(np.asarray(labels, dtype=np.float32) * self.labeled[:, None])
        self.img_size = img_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = load_image(self.paths[i], self.img_size)
        return img, self.targets[i], torch.tensor(bool(self.labeled[i]))
