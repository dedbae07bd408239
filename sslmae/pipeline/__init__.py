"""The Kubeflow side: step functions the components call, the PyTorchJob launcher, and
compile / run-local / submit / schedule. kfp is imported lazily."""
