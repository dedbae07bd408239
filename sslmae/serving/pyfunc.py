"""The MLflow pyfunc form of an sslmae model: what `mlflow.pyfunc.load_model("models:/sslmae@champion")`
and `mlflow models serve` run. Logged "from code" (sslmae/serving/mlflow_code.py names this class),
so no pickle is written or read: it loads with MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false.

    input   DataFrame, column `image`: encoded image bytes (JSON: base64, as the signature's
            binary column says); base64 text is taken too
    output  DataFrame, one row per image: `prob_<label>` per label, `predicted` (labels joined by
            ';'), the columns `sslmae predict` writes, by the same decoding and thresholds"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from sslmae.serving.images import BadImage, image_bytes
from sslmae.serving.scorer import Scorer

ARTIFACT = "model_file"  # the sslmae model file among the MLflow Model's artifacts
COLUMN = "image"


class SSLMAEPyfunc(PythonModel):
    def load_context(self, context) -> None:
        self.scorer = Scorer.from_file(context.artifacts[ARTIFACT], device="cpu")

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame) or COLUMN not in model_input.columns:
            got = list(model_input.columns) if isinstance(model_input, pd.DataFrame) else type(model_input).__name__
            raise MlflowException(f"expected a DataFrame with column {COLUMN!r} (encoded image bytes), got {got}",
                                  INVALID_PARAMETER_VALUE)
        try:
            images = [self.scorer.decode(image_bytes(v, f"{COLUMN}[{i}]"), f"{COLUMN}[{i}]")
                      for i, v in enumerate(model_input[COLUMN])]
        except BadImage as exc:
            raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from None
        probs = self.scorer.scores(images) if images else np.zeros((0, len(self.scorer.labels)), np.float32)
        table = pd.DataFrame({f"prob_{name}": probs[:, j].astype(np.float64) for j, name in enumerate(self.scorer.labels)})
        table["predicted"] = [";".join(d) for d in self.scorer.decisions(probs)]
        return table
