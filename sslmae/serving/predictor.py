"""The model server's predictor: a `kserve.Model` that answers both of KServe's REST protocols.

    v2 (Open Inference Protocol)  POST /v2/models/<name>/infer
        inputs: [{"name": "image", "datatype": "BYTES", "shape": [N], "data": [<base64>, ...]}]
                (a model with bands: GeoTIFFs, or the bands themselves as a tensor
                 {"datatype": "UINT16" | "FP32", "shape": [N, C, S, S], "data": [...]})
        -> outputs "probabilities" FP32 (N, C) (label order in its parameters.labels) and
           "labels" BYTES (N,): each image's predicted labels joined by ';'
    v1                            POST /v1/models/<name>:predict
        {"instances": [{"image": {"b64": <base64>}}, ...]}
        -> {"predictions": [{"probabilities": {label: p}, "labels": [...]}, ...]}

A request's images are decoded in parallel (a thread pool: PIL releases the GIL while it
decodes), then scored as one batch through the `Batcher`, which merges concurrent requests.
Anything wrong with a request is a `BadRequest` (KServe's InvalidInput: HTTP 400, {"error": ...})."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sslmae.serving.batcher import Batcher
from sslmae.serving.images import BadImage, band_tensor, image_bytes
from sslmae.serving.scorer import Scorer

INPUT = "image"
MAX_IMAGES = 256  # per request: a client with more sends more requests (and gets batched with others)


class BadRequest(ValueError):
    """What is wrong with a request, in words for the client (the server answers 400)."""


class Predictor:
    """The protocols' logic, free of KServe's types (sslmae.serving.kserve_model adapts it)."""

    def __init__(self, scorer: Scorer, batcher: Batcher, decode_threads: int):
        self.scorer, self.batcher = scorer, batcher
        self._decoders = ThreadPoolExecutor(decode_threads, thread_name_prefix="sslmae-decode")

    async def v1(self, body: dict) -> dict:
        probs = await self._score(_v1_images(body))
        return {"predictions": [{"probabilities": dict(zip(self.scorer.labels, map(float, row))), "labels": labels}
                                for row, labels in zip(probs, self.scorer.decisions(probs))]}

    async def v2(self, inputs: dict[str, tuple]) -> tuple[np.ndarray, list[str]]:
        """{input name: (datatype, data[, shape])} -> probabilities (N, C), each image's labels joined by ';'."""
        tensor = _v2_tensor(inputs, self.scorer)
        if tensor is not None:
            probs = await self.batcher.score(tensor)
        else:
            probs = await self._score(_v2_images(inputs))
        return probs, [";".join(d) for d in self.scorer.decisions(probs)]

    async def _score(self, items: list[tuple[object, str]]) -> np.ndarray:
        """[(base64 text or raw bytes, where)] -> (N, C) probabilities; BadRequest naming the image."""
        loop = asyncio.get_running_loop()
        try:
            images = await asyncio.gather(*(loop.run_in_executor(self._decoders, self._decode, item, where)
                                            for item, where in items))
        except BadImage as exc:
            raise BadRequest(str(exc)) from None
        return await self.batcher.score(list(images))

    def _decode(self, item, where: str) -> np.ndarray:
        return self.scorer.decode(image_bytes(item, where), where)


def _checked(items: list, what: str) -> list:
    if not items:
        raise BadRequest(f"{what}: no images in the request")
    if len(items) > MAX_IMAGES:
        raise BadRequest(f"{what}: {len(items)} images in one request; at most {MAX_IMAGES}")
    return items


def _v2_tensor(inputs: dict[str, tuple], scorer: Scorer) -> list[np.ndarray] | None:
    """A model with bands, sent its bands as a tensor: the images (C, S, S); else None (encoded images,
    which an RGB model alone reads)."""
    if INPUT not in inputs or inputs[INPUT][0] == "BYTES" or scorer.bands is None:
        return None
    datatype, data, *shape = inputs[INPUT]
    shape = shape[0] if shape else np.shape(data)
    try:
        return _checked(band_tensor(data, datatype, shape, scorer.bands, scorer.img_size, f"input {INPUT!r}"),
                        f"input {INPUT!r}")
    except BadImage as exc:
        raise BadRequest(str(exc)) from None


def _v2_images(inputs: dict[str, tuple]) -> list[tuple[object, str]]:
    """The `image` input's elements: base64 strings (JSON) or raw bytes (the binary extension)."""
    if INPUT not in inputs:
        raise BadRequest(f"no input named {INPUT!r} (the request has {sorted(inputs)}): send the encoded images "
                         f"as input {INPUT!r}, datatype BYTES, base64 text in JSON")
    datatype, data = inputs[INPUT][:2]
    if datatype != "BYTES":
        raise BadRequest(f"input {INPUT!r}: datatype must be BYTES (encoded images, base64 in JSON), got {datatype}")
    data = list(np.asarray(data, dtype=object).reshape(-1)) if data is not None else []
    return [(d, f"{INPUT}[{i}]") for i, d in enumerate(_checked(data, f"input {INPUT!r}"))]


def _v1_images(body: dict) -> list[tuple[object, str]]:
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise BadRequest('expected {"instances": [{"image": {"b64": <base64>}}, ...]}'
                         f" (the request has keys {sorted(body)})")
    out = []
    for i, inst in enumerate(_checked(instances, "instances")):
        item = inst.get(INPUT) if isinstance(inst, dict) and INPUT in inst else inst
        if isinstance(item, dict) and set(item) != {"b64"}:
            raise BadRequest(f'instances[{i}]: expected {{"image": {{"b64": <base64>}}}}, got keys {sorted(item)}')
        out.append((item, f"instances[{i}]"))
    return out
