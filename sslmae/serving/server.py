"""`sslmae serve`: a model file or registry version on KServe's Python model server
(`kserve.ModelServer`, REST only): the predictor (sslmae.serving.predictor) with dynamic batching,
KServe's health, readiness and Prometheus `/metrics` endpoints, and a request-size limit.

uvicorn, under KServe, finishes the requests in flight on SIGTERM (within `grace_s`) and the
process then exits 0: a pod being replaced drops no request."""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sslmae.config.schema import TrackingConfig
from sslmae.serving.batcher import Batcher
from sslmae.serving.images import ImageLimits
from sslmae.serving.kserve_model import import_kserve, kserve_model
from sslmae.serving.limits import RequestLimits
from sslmae.serving.predictor import Predictor
from sslmae.serving.scorer import Scorer
from sslmae.tracking.models import resolve_model


@dataclass(frozen=True)
class ServeOptions:
    port: int = 8080
    name: str = "sslmae"  # the model's name in the URLs
    max_batch: int = 32  # images per forward pass
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    batching: bool = True
    max_body_mb: float = 32.0
    max_pixels: int = ImageLimits.max_pixels
    decode_threads: int = max(2, os.cpu_count() or 2)
    grace_s: int = 30


@functools.cache  # prometheus_client refuses a second metric of one name in its process-wide registry
def _batch_histogram():
    """sslmae_batch_images on KServe's /metrics: how full the forward passes are."""
    from prometheus_client import Histogram

    return Histogram("sslmae_batch_images", "images per forward pass of the model server",
                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


def build_predictor(model_file: str | Path, opts: ServeOptions) -> Predictor:
    """The predictor, ready to answer (the model loaded)."""
    scorer = Scorer.from_file(model_file, ImageLimits(max_pixels=opts.max_pixels))
    batcher = Batcher(scorer.scores, opts.max_batch, opts.max_wait_ms, opts.batching, observe=_batch_histogram().observe)
    return Predictor(scorer, batcher, opts.decode_threads)


def serve(model_uri: str, opts: ServeOptions, tracking: TrackingConfig | None = None, log=print) -> None:
    """Serve `model_uri` (a model file, or models:/NAME@ALIAS | models:/NAME/VERSION) until SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="sslmae-serve-") as work:
        model_file = resolve_model(model_uri, tracking, Path(work) / "model")
        predictor = build_predictor(model_file, opts)
        kserve, model_server = import_kserve()
        model_server.app.add_middleware(RequestLimits, max_bytes=int(opts.max_body_mb * 2**20))
        log(f"serve: {model_uri} as {opts.name!r} on port {opts.port} ({len(predictor.scorer.labels)} labels, "
            f"{predictor.scorer.img_size} px; batching {'up to %d images, %g ms' % (opts.max_batch, opts.max_wait_ms) if opts.batching else 'off'})")
        kserve.ModelServer(http_port=opts.port, enable_grpc=False, workers=1, grace_period=opts.grace_s,
                           enable_docs_url=False).start([kserve_model(opts.name, predictor)])
