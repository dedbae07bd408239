"""The code file of sslmae's MLflow Model ("models from code"): MLflow copies it into the model
and runs it when the model is loaded, which is why it calls set_model at import. Library code
never imports it."""

import mlflow

from sslmae.serving.pyfunc import SSLMAEPyfunc

mlflow.models.set_model(SSLMAEPyfunc())
