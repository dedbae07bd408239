"""Batch augmentation on the training device: per-stream settings (streams), the ops (batch,
color) and the pixel scaling the encoder sees (pixels)."""
