"""The predictor as a `kserve.Model`, made when `sslmae serve` starts: kserve is imported only
there (it takes seconds, and parses sys.argv when imported, hence `_argv_alone`)."""

from __future__ import annotations

import contextlib
import sys
import uuid

from sslmae.serving.predictor import BadRequest, Predictor


@contextlib.contextmanager
def _argv_alone():
    """kserve.model_server parses sys.argv when it is imported (parse_known_args, which takes
    abbreviations: our --model would become its --model_name); let it see no arguments."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def import_kserve():
    with _argv_alone():
        import kserve
        from kserve import model_server
    return kserve, model_server


def kserve_model(name: str, predictor: Predictor):
    """A registered-ready kserve.Model named `name` answering v1 and v2 with `predictor`."""
    kserve, _ = import_kserve()
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class SSLMAEModel(kserve.Model):
        async def predict(self, payload, headers=None, response_headers=None):
            try:
                if isinstance(payload, InferRequest):
                    probs, labels = await predictor.v2({i.name: (i.datatype, i.data, i.shape) for i in payload.inputs})
                    n, c = probs.shape
                    outputs = [InferOutput("probabilities", [n, c], "FP32", probs.tolist(),
                                           parameters={"labels": ";".join(predictor.scorer.labels)}),
                               InferOutput("labels", [n], "BYTES", labels)]
                    return InferResponse(payload.id or str(uuid.uuid4()), self.name, outputs)
                if isinstance(payload, dict):
                    return await predictor.v1(payload)
                raise BadRequest("the request body must be JSON (content-type: application/json): v1 "
                                 '{"instances": [{"image": {"b64": ...}}]} or a v2 inference request')
            except BadRequest as exc:
                raise InvalidInput(str(exc)) from None

        def stop(self) -> None:
            """KServe calls this on SIGTERM while uvicorn still finishes the requests in flight: the
            model and its threads stay usable until the process exits; only readiness goes."""
            self.ready = False

    model = SSLMAEModel(name)
    model.ready = True  # the predictor holds the loaded model
    return model
