"""One training run: the Lightning module and data module, checkpoints, history, the exported model file."""
