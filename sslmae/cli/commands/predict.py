"""`sslmae predict`: probabilities and labels for new images, from a model file or the registry."""

from sslmae.cli.params import add_params, load_params
from sslmae.predict import predict


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model file or models:/NAME@ALIAS")
    p.add_argument("--input", required=True,
                   help="a folder, archive or s3:// prefix of images, or an ingested dataset (files or shards)")
    p.add_argument("--out", required=True, help="predictions .csv or .parquet")
    p.add_argument("--thresholds", default="tuned", help="tuned (per class, from validation) or a number")
    p.add_argument("--s3-endpoint", default=None)
    add_params(p)


def run(args) -> None:
    cfg = load_params(args)
    predict(args.model, args.input, args.out, thresholds=args.thresholds, tracking=cfg.tracking,
            s3_endpoint=args.s3_endpoint, cache_dir=cfg.data.cache_dir, cache_bytes=cfg.data.stream_cache_bytes)
