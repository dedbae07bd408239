"""Kubeflow pipelines of sslmae (import `pipelines.training`)."""
