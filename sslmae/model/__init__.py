"""The network: backbones, the SSL-MAE variants, decoders, losses, masks and the patch layout."""
