"""Serving the champion: the model on KServe's Python model server (`sslmae serve`), its MLflow
pyfunc form (`mlflow models serve`, `mlflow.pyfunc.load_model`), and the pieces both share."""
