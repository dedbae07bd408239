"""Kubeflow components: one per pipeline step, each a thin wrapper over one function of
`sslmae.kubeflow.steps`. They run in the project's image (docker/Dockerfile), where sslmae
and kfp are installed: nothing is pip-installed when a pod starts. Each component imports
inside its function because KFP runs that function's body alone in the container.

The image a compiled pipeline uses is `--image` (pipelines.training.Resources.image, set on
every task); IMAGE below is its default: `$SSLMAE_IMAGE` when set, else PLACEHOLDER, a name
that is not published anywhere (compile, submit and schedule warn when it is used).
"""

import os

PLACEHOLDER = "ghcr.io/sslmae/sslmae:0.1.0"
IMAGE = os.environ.get("SSLMAE_IMAGE", PLACEHOLDER)
