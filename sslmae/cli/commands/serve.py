"""`sslmae serve`: the model on KServe's model server (v1 and v2 REST, health, /metrics)."""

from sslmae.cli.params import add_params, load_params
from sslmae.serving.server import ServeOptions, serve

DEFAULTS = ServeOptions()


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model file, models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("--port", type=int, default=DEFAULTS.port)
    p.add_argument("--name", default=DEFAULTS.name, help="the model's name in the URLs (/v2/models/NAME/infer)")
    p.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch, help="images per forward pass")
    p.add_argument("--max-wait-ms", type=float, default=DEFAULTS.max_wait_ms,
                   help="how long a request waits for others to share its forward pass")
    p.add_argument("--no-batching", dest="batching", action="store_false",
                   help="score each request alone (its own images still one pass)")
    p.add_argument("--max-body-mb", type=float, default=DEFAULTS.max_body_mb, help="larger requests get 413")
    p.add_argument("--max-pixels", type=int, default=DEFAULTS.max_pixels,
                   help="larger images (width x height) get 400: decompression bombs")
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    opts = ServeOptions(port=args.port, name=args.name, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                        batching=args.batching, max_body_mb=args.max_body_mb, max_pixels=args.max_pixels)
    serve(args.model, opts, cfg.tracking)
