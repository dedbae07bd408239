"""Kubeflow components: one per pipeline step, each a thin wrapper over one function of
`sslmae.pipeline.steps`. They run in the project's image (docker/Dockerfile), where sslmae
and kfp are installed: nothing is pip-installed when a pod starts. Each component imports
inside its function because KFP runs that function's body alone in the container.

The image is `$SSLMAE_IMAGE` when the components are imported (at compile time), else
IMAGE below.
"""

import os

IMAGE = os.environ.get("SSLMAE_IMAGE", "ghcr.io/sslmae/sslmae:0.1.0")
