"""From a dataset on disk to batches: the image dataset (images), the decode-once cache (cache),
the semi-supervised batch samplers (sampling) and the loaders evaluation and training share
(loaders)."""
