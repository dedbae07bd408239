"""A model file made ready to answer requests: decoded images in, per-label probabilities and
decisions out, by the same rules as `sslmae predict` (its decoding, normalisation and thresholds:
tuned on validation, 0.5 where the model has none, the highest class for multi-class)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslmae.inference import predict_scores
from sslmae.metrics import DECISIONS
from sslmae.metrics.decisions import decision_thresholds
from sslmae.serving.images import ImageLimits, decode_bands, decode_image
from sslmae.train.model_file import load_model


@dataclass
class Scorer:
    model: torch.nn.Module
    labels: list[str]
    img_size: int
    task: str
    thresholds: np.ndarray  # (C,)
    limits: ImageLimits = field(default_factory=ImageLimits)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_file(cls, path: str | Path, limits: ImageLimits | None = None, device: str | None = None) -> "Scorer":
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, cfg, labels, meta = load_model(path)
        thr, _ = decision_thresholds("tuned", meta, len(labels), cfg.data.task)
        return cls(model.to(dev).eval(), list(labels), cfg.data.img_size, cfg.data.task, thr,
                   limits or ImageLimits(), dev)

    @property
    def bands(self):
        """The model's bands (sslmae.bands.Bands), or None: 8-bit RGB."""
        return self.model.bands

    def decode(self, data: bytes, where: str) -> np.ndarray:
        """Encoded bytes -> (S, S, 3) uint8 (a model with bands: a GeoTIFF -> (C, S, S) at its dtype);
        BadImage naming `where` when they cannot be scored."""
        if self.bands is not None:
            return decode_bands(data, self.bands, self.img_size, self.limits, where)
        return decode_image(data, self.img_size, self.limits, where)

    def scores(self, images: list[np.ndarray]) -> np.ndarray:
        """(S, S, 3) uint8 images (with bands: (C, S, S)) -> probabilities (N, C) float32, one forward pass."""
        if self.bands is not None:
            batch = torch.from_numpy(np.stack(images).astype(np.float32))
        else:
            batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        probs, _ = predict_scores(self.model, [(batch, torch.zeros(0))], self.device)
        return probs.astype(np.float32)

    def decisions(self, probs: np.ndarray) -> list[list[str]]:
        """Probabilities (N, C) -> the predicted label names of each image."""
        pred = DECISIONS[self.task](probs, self.thresholds)
        return [[name for name, on in zip(self.labels, row) if on] for row in pred]
