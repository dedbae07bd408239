"""`sslmae ingest`: any supported layout, and the unlabeled sources beside it, -> the canonical dataset
(params `data.source`, `data.unlabeled`, `data.dir`, `data.layout`, `data.on_bad`, `data.format`,
`data.shard_bytes`, `data.bands`). A SOURCE given on the command line is another dataset than params' data.source: its
pool is what --unlabeled gives, none without it (params' pool belongs to params' source)."""

from sslmae.cli.params import PREFIX, add_params, knob_flag, knob_positional, load_params
from sslmae.datasets.ingest import ingest


def add_arguments(p) -> None:
    knob_positional(p, "data.source", "SOURCE", "a folder, a .zip/.tar(.gz) archive, or s3://bucket/prefix")
    knob_flag(p, "--unlabeled", "data.unlabeled", "unlabeled sources, the pool, as a list: '[DIR, ARCHIVE, s3://B/P]'")
    knob_flag(p, "--out", "data.dir", "dataset folder to write (shards: also s3://bucket/prefix)")
    knob_flag(p, "--format", "data.format", "files: images/ (small data) | shards: tar shards (data at scale)")
    knob_flag(p, "--shard-bytes", "data.shard_bytes", "shards: about this many bytes each")
    knob_flag(p, "--layout", "data.layout", "auto|labels-csv|ucm-txt|class-folders|bigearthnet|manifest")
    knob_flag(p, "--bands", "data.bands", "auto (follow the data) | rgb | all | a list of band names or 1-based indices")
    knob_flag(p, "--on-bad", "data.on_bad", "error: stop at the first bad item; skip: list it in ingest_report.json")
    p.add_argument("--s3-endpoint", default=None, help="S3 API URL (default: AWS_ENDPOINT_URL[_S3] or AWS)")
    p.add_argument("--max-pixels", type=int, default=None, help="larger images are rejected (bomb guard; default 1e8)")
    p.add_argument("--min-side", type=int, default=None, help="images with a smaller side are rejected (default 16)")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default 4)")
    add_params(p)


def run(args) -> None:
    d = load_params(args).data
    given = vars(args)
    if given[f"{PREFIX}data.source:SOURCE"] is not None and given[f"{PREFIX}data.unlabeled:--unlabeled"] is None:
        d = d.model_copy(update={"unlabeled": []})
    limits = {k: v for k, v in (("max_pixels", args.max_pixels), ("min_side", args.min_side),
                                ("workers", args.workers)) if v is not None}
    ingest(d.source, d.dir, layout=d.layout, on_bad=d.on_bad, s3_endpoint=args.s3_endpoint, format=d.format,
           shard_bytes=d.shard_bytes, unlabeled=d.unlabeled, unlabeled_rows=d.unlabeled_rows, bands=d.bands, **limits)
