"""The model server's predictor: a `kserve.Model` that answers both of KServe's REST protocols.

    v2 (Open Inference Protocol)  POST /v2/models/<name>/infer
        inputs: [{"name": "image", "datatype": "BYTES", "shape": [N], "data": [<base64>, ...]}]
        -> outputs "probabilities" FP32 (N, C) (label order in its parameters.labels) and
           "labels" BYTES (N,): each image's predicted labels joined by ';'
    v1                            POST /v1/models/<name>:predict
        {"instances": [{"image": {"b64": <base64>}}, ...]}
        -> {"predictions": [{"probabilities": {label: p}, "labels": [...]}, ...]}

A request's images are decoded in parallel (a thread pool: PIL releases the GIL while it
decodes), then scored as one batch through the `Batcher`, which merges concurrent requests.
Anything wrong with a request is `kserve.errors.InvalidInput` (HTTP 400, {"error": ...})."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from sslmae.serving.batcher import Batcher
from sslmae.serving.images import BadImage, from_base64
from sslmae.serving.scorer import Scorer

INPUT = "image"
MAX_IMAGES = 256  # per request: a client with more sends more requests (and gets batched with others)


class SSLMAEPredictor(Model):
    def __init__(self, name: str, scorer: Scorer, batcher: Batcher, decode_threads: int):
        super().__init__(name)
        self.scorer, self.batcher = scorer, batcher
        self._decoders = ThreadPoolExecutor(decode_threads, thread_name_prefix="sslmae-decode")
        self.ready = True  # the scorer holds the loaded model

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            probs = await self._score(_v2_images(payload))
            return self._v2_response(payload, probs)
        if isinstance(payload, dict):
            probs = await self._score(_v1_images(payload))
            return {"predictions": [{"probabilities": dict(zip(self.scorer.labels, map(float, row))), "labels": labels}
                                    for row, labels in zip(probs, self.scorer.decisions(probs))]}
        raise InvalidInput("the request body must be JSON (content-type: application/json): v1 "
                           '{"instances": [{"image": {"b64": ...}}]} or a v2 inference request')

    async def _score(self, items: list[tuple[object, str]]) -> np.ndarray:
        """[(base64 text or raw bytes, where)] -> (N, C) probabilities; InvalidInput naming the image."""
        loop = asyncio.get_running_loop()
        try:
            images = await asyncio.gather(*(loop.run_in_executor(self._decoders, self._decode, item, where)
                                            for item, where in items))
        except BadImage as exc:
            raise InvalidInput(str(exc)) from None
        return await self.batcher.score(list(images))

    def _decode(self, item, where: str) -> np.ndarray:
        data = item if isinstance(item, (bytes, bytearray)) else from_base64(item, where)
        return self.scorer.decode(bytes(data), where)

    def _v2_response(self, request: InferRequest, probs: np.ndarray) -> InferResponse:
        n, c = probs.shape
        outputs = [InferOutput("probabilities", [n, c], "FP32", probs.tolist(),
                               parameters={"labels": ";".join(self.scorer.labels)}),
                   InferOutput("labels", [n], "BYTES", [";".join(d) for d in self.scorer.decisions(probs)])]
        return InferResponse(request.id or str(uuid.uuid4()), self.name, outputs)

    def stop(self) -> None:
        """KServe calls this on SIGTERM while uvicorn still finishes the requests in flight: the
        model and its threads stay usable until the process exits; only readiness goes."""
        self.ready = False


def _checked(items: list, what: str) -> list:
    if not items:
        raise InvalidInput(f"{what}: no images in the request")
    if len(items) > MAX_IMAGES:
        raise InvalidInput(f"{what}: {len(items)} images in one request; at most {MAX_IMAGES}")
    return items


def _v2_images(request: InferRequest) -> list[tuple[object, str]]:
    """The `image` input's elements: base64 strings (JSON) or raw bytes (the binary extension)."""
    named = {i.name: i for i in request.inputs}
    if INPUT not in named:
        raise InvalidInput(f"no input named {INPUT!r} (the request has {sorted(named)}): send the encoded images "
                           f"as input {INPUT!r}, datatype BYTES, base64 text in JSON")
    tensor = named[INPUT]
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {INPUT!r}: datatype must be BYTES (encoded images, base64 in JSON), "
                           f"got {tensor.datatype}")
    data = tensor.data
    data = list(np.asarray(data, dtype=object).reshape(-1)) if data is not None else []
    return [(d, f"{INPUT}[{i}]") for i, d in enumerate(_checked(data, f"input {INPUT!r}"))]


def _v1_images(body: dict) -> list[tuple[object, str]]:
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise InvalidInput('expected {"instances": [{"image": {"b64": <base64>}}, ...]}'
                           f" (the request has keys {sorted(body)})")
    out = []
    for i, inst in enumerate(_checked(instances, "instances")):
        item = inst.get(INPUT) if isinstance(inst, dict) and INPUT in inst else inst
        if isinstance(item, dict) and set(item) != {"b64"}:
            raise InvalidInput(f'instances[{i}]: expected {{"image": {{"b64": <base64>}}}}, got keys {sorted(item)}')
        out.append((item, f"instances[{i}]"))
    return out
