"""sslmae: SSL-MAE (masked-autoencoder reconstruction + classification, adaptive weight)
for label-efficient multi-label classification of remote-sensing images.

Importing the package has no side effects: no folders, no tracking URIs, no downloads.
"""

__version__ = "0.1.0"
