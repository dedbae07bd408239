"""Shard formats for streaming training, on the same data: LitData's optimized chunks, WebDataset tar
shards and MosaicML Streaming MDS, each written and read the way its own documentation does it.

    python bench/bench_shards.py [--data INGESTED_DIR | --source ../shared/datasets/ucm_mlc]
                                 [--shard-mb 64] [--workers 2] [--size 64] [--out bench/results]

For each library, on the images of one ingested dataset (the stored PNG/JPEG bytes and labels,
as `sslmae ingest` keeps them):

  write      the library's writer (litdata.optimize with 2 processes; webdataset.ShardWriter;
             streaming.MDSWriter), ~shard-mb per shard: seconds, images/s, files, bytes, and the
             writer process's peak RSS (a child process each, so the figures do not mix).
  read       one shuffled epoch through the library's own loader (2 workers, batches of 64), the
             images decoded and resized to --size in the workers as sslmae's loaders do: images/s.
             Local shards, then the same shards from an S3 server (SeaweedFS `weed mini`, started
             here; skipped where it is not installed) through the library's S3 path with a local
             cache bounded to half the dataset: seconds to the first batch and images/s.
  resume     the loader's own mid-epoch state (state_dict after 3 batches, a new loader loads it):
             does it continue with exactly the batches an uninterrupted epoch yields next?

MosaicML Streaming is imported from --mds-path when given (pip install --target DIR --no-deps
mosaicml-streaming==0.13.0 transformers tokenizers huggingface_hub regex catalogue cramjam
zstd python-snappy brotli xxhash): installed normally it pins numpy<2.2 and imports transformers.

Writes bench/results/shards_<YYYY-MM-DD>.json atomically and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

from sslmae.atomic import write_json  # noqa: E402

BATCH, WORKERS_READ, RESUME_AFTER = 64, 2, 3
KEY, SECRET = "bench-key", "bench-secret"


# ---------------------------------------------------------------- the data, as ingest keeps it

def rows(data: Path) -> list[tuple[str, str, list[int]]]:
    """(image id, stored file, labels) of every image of an ingested dataset."""
    t = pq.read_table(data / "manifest.parquet", columns=["image", "path", "labels"]).to_pydict()
    return list(zip(t["image"], [str(data / p) for p in t["path"]], t["labels"]))


class Decoded:
    """(image, id) of a sample dict, the image decoded: a picklable transform for spawned workers."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, sample: dict):
        data = next(v for k, v in sample.items() if k in ("image", "png", "jpg"))
        return decode(data, self.size), sample.get("id", sample.get("__key__"))


def decode(data: bytes, size: int):
    """Encoded bytes -> (3, size, size) uint8 tensor, the work sslmae's loader workers do per image."""
    import torch  # not at module level: the writers' children measure their memory without it

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


# ---------------------------------------------------------------- writers (each in a child process)

class LitItem:
    """litdata.optimize's fn (its workers are spawned: a picklable callable)."""

    def __init__(self, data: Path):
        self.items = rows(data)

    def __call__(self, i: int) -> dict:
        image, path, labels = self.items[i]
        return {"id": image, "image": Path(path).read_bytes(), "labels": np.asarray(labels, np.uint8)}


def write_litdata(data: Path, out: Path, shard_mb: int) -> None:
    import litdata

    fn = LitItem(data)
    litdata.optimize(fn=fn, inputs=list(range(len(fn.items))), output_dir=str(out), chunk_bytes=f"{shard_mb}MB",
                     num_workers=2, mode="overwrite")


def write_webdataset(data: Path, out: Path, shard_mb: int) -> None:
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxsize=shard_mb * 10**6, verbose=0) as sink:
        for image, path, labels in rows(data):
            ext = Path(path).suffix.lstrip(".")
            sink.write({"__key__": image, ext: Path(path).read_bytes(), "json": {"labels": list(labels)}})


def write_mds(data: Path, out: Path, shard_mb: int) -> None:
    from streaming import MDSWriter

    columns = {"id": "str", "image": "bytes", "labels": "ndarray:uint8"}
    with MDSWriter(out=str(out), columns=columns, size_limit=f"{shard_mb}mb") as sink:
        for image, path, labels in rows(data):
            sink.write({"id": image, "image": Path(path).read_bytes(), "labels": np.asarray(labels, np.uint8)})


WRITERS = {"litdata": write_litdata, "webdataset": write_webdataset, "mds": write_mds}


def run_writer(name: str, data: Path, out: Path, shard_mb: int, mds_path: str | None) -> dict:
    """The writer in a child process: seconds, files, bytes, and the peak RSS of the writing process
    and of the largest process it started (litdata.optimize's workers)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (mds_path, str(REPO)) if p))
    code = (f"import json, resource, sys; sys.path.insert(0, {str(REPO / 'bench')!r}); from pathlib import Path; "
            f"import bench_shards as b; b.WRITERS[{name!r}](Path({str(data)!r}), Path({str(out)!r}), {shard_mb}); "
            "print(json.dumps([resource.getrusage(w).ru_maxrss for w in "
            "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]))")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{name} writer failed: {proc.stderr[-2000:]}")
    own, workers = json.loads(proc.stdout.strip().splitlines()[-1])  # KiB
    files = [p for p in out.rglob("*") if p.is_file()]
    return {"seconds": round(seconds, 2), "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "peak_rss_mb": round(own / 1024, 1), "worker_peak_rss_mb": round(workers / 1024, 1) if workers else None}


# ---------------------------------------------------------------- readers

def litdata_loader(uri: str, cache: Path | None, size: int, limit: int | None, storage: dict | None):
    import litdata

    ds = litdata.StreamingDataset(uri, cache_dir=str(cache) if cache else None, shuffle=True, seed=0,
                                  max_cache_size=limit or "100GB", storage_options=storage or {},
                                  transform=Decoded(size))
    return litdata.StreamingDataLoader(ds, batch_size=BATCH, num_workers=WORKERS_READ)


def webdataset_loader(urls: list[str], cache: Path | None, size: int, limit: int | None, storage=None):
    import webdataset as wds

    ds = (wds.WebDataset(urls, shardshuffle=len(urls), seed=0, cache_dir=str(cache) if cache else None,
                         cache_size=limit or -1, nodesplitter=wds.split_by_node, empty_check=False)
          .shuffle(1000).map(Decoded(size)))
    return wds.WebLoader(ds, batch_size=BATCH, num_workers=WORKERS_READ)


def mds_loader(uri: str, cache: Path | None, size: int, limit: int | None, storage=None):
    from streaming import StreamingDataLoader, StreamingDataset

    remote, local = (uri, str(cache)) if uri.startswith("s3://") else (None, uri)
    ds = _mds_decoding(StreamingDataset, size)(remote=remote, local=local, shuffle=True, shuffle_seed=0, batch_size=BATCH,
                 cache_limit=limit, predownload=BATCH * 4)
    return StreamingDataLoader(ds, batch_size=BATCH, num_workers=WORKERS_READ)


def _mds_decoding(base, size: int):
    class MDSDecoded(base):
        def __getitem__(self, i):
            return Decoded(size)(super().__getitem__(i))

    return MDSDecoded


LOADERS = {"litdata": litdata_loader, "webdataset": webdataset_loader, "mds": mds_loader}


def epoch(loader) -> tuple[float, float, int]:
    """(seconds to the first batch, images/s over the epoch, images)."""
    started = time.perf_counter()
    first, n = None, 0
    for imgs, _ in loader:
        first = first or time.perf_counter() - started
        n += len(imgs)
    return first, n / (time.perf_counter() - started), n


def resume_is_exact(make) -> bool | None:
    """Does the loader's own state, saved after RESUME_AFTER batches, make a new loader continue
    with the batches an uninterrupted epoch yields next? None: the loader has no state."""
    whole = [list(ids) for _, ids in make()]
    first = make()
    if not hasattr(first, "state_dict"):
        return None
    seen = []
    for i, (_, ids) in enumerate(first):
        seen.append(list(ids))
        if i + 1 == RESUME_AFTER:
            state = first.state_dict()
            break
    second = make()
    second.load_state_dict(state)
    rest = [list(ids) for _, ids in second]
    return seen + rest == whole


# ---------------------------------------------------------------- S3

@contextlib.contextmanager
def s3_env(folder: Path):
    """An S3 server with a bucket `bench`, and the environment the three libraries read it with."""
    from sslmae.kubeflow.services import s3_server

    with s3_server(folder, KEY, SECRET, log=lambda m: None) as endpoint:
        saved = dict(os.environ)
        os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL=endpoint, S3_ENDPOINT_URL=endpoint)
        try:
            client = client_for(endpoint)
            client.create_bucket(Bucket="bench")
            yield endpoint, client
        finally:
            os.environ.clear()
            os.environ.update(saved)


def client_for(endpoint: str):
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                          aws_access_key_id=KEY, aws_secret_access_key=SECRET)


def upload(client, folder: Path, prefix: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), "bench", f"{prefix}/{p.relative_to(folder).as_posix()}")


def remote_source(name: str, client, folder: Path, prefix: str):
    """What the library's loader takes for shards on S3."""
    if name == "webdataset":  # plain HTTP(S) URLs (presigned), opened with curl by webdataset's gopen
        return [client.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": f"{prefix}/{p.name}"},
                                              ExpiresIn=3600) for p in sorted(folder.glob("*.tar"))]
    return f"s3://bench/{prefix}"


# ---------------------------------------------------------------- main

def versions() -> dict:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("litdata", "webdataset", "mosaicml-streaming") if _installed(p)}


def _installed(package: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(package)
        return True
    except md.PackageNotFoundError:
        return False


def bench(name: str, data: Path, work: Path, args, s3) -> dict:
    shards = work / name
    result = {"library": name, "write": run_writer(name, data, shards, args.shard_mb, args.mds_path)}
    local = [str(p) for p in sorted(shards.glob("*.tar"))] if name == "webdataset" else str(shards)

    def make_local():
        return LOADERS[name](local, None, args.size, None, None)

    first, rate, n = epoch(make_local())
    result["read_local"] = {"images": n, "first_batch_s": round(first, 2), "img_per_s": round(rate, 1)}
    result["resume_exact"] = resume_is_exact(make_local)
    if s3 is not None:
        endpoint, client = s3
        upload(client, shards, name)
        # half the dataset, but room for the shards in flight (MDS asks for that much)
        limit = max(result["write"]["bytes"] // 2, 4 * args.shard_mb * 10**6)
        cache = work / f"{name}-cache"
        cache.mkdir()
        source = remote_source(name, client, shards, name)
        storage = {"endpoint_url": endpoint, "aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
        try:
            first, rate, n = epoch(LOADERS[name](source, cache, args.size, limit, storage))
        except Exception as exc:  # a library that cannot read this endpoint: what it said is the result
            result["read_s3"] = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}
            return result
        used = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
        result["read_s3"] = {"images": n, "first_batch_s": round(first, 2), "img_per_s": round(rate, 1),
                             "cache_limit_bytes": limit, "cache_bytes_after": used}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="an ingested dataset folder")
    ap.add_argument("--source", default=str(REPO.parent / "shared" / "datasets" / "ucm_mlc"),
                    help="ingested into a temporary folder when --data is not given")
    ap.add_argument("--shard-mb", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--libraries", nargs="+", default=list(WRITERS))
    ap.add_argument("--mds-path", default=None, help="a folder holding mosaicml-streaming (see the docstring)")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    if args.mds_path:
        sys.path.insert(0, args.mds_path)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="sslmae-bench-shards-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            if not Path(args.source).exists():
                print(f"skipped: {args.source} not found")
                return 0
            from sslmae.datasets.ingest import ingest

            data = ingest(args.source, work / "dataset", log=lambda m: None).out
        n = len(rows(data))
        with (contextlib.nullcontext() if args.no_s3 or not shutil.which("weed", path=str(Path(sys.executable).parent))
              else s3_env(work / "s3")) as s3:
            results = [bench(name, data, work, args, s3) for name in args.libraries]
    report = {"date": dt.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs", "python": platform.python_version(), "torch": torch.__version__,
              "versions": versions(),
              "dataset": str(args.data or args.source), "images": n, "shard_mb": args.shard_mb,
              "decode_size": args.size, "batch": BATCH, "workers": WORKERS_READ, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"shards_{report['date']}.json", report)
    print(f"{n} images, {args.shard_mb} MB shards, decoded to {args.size} px in {WORKERS_READ} workers")
    print(f"{'library':<11} {'write s':>8} {'files':>6} {'MB':>8} {'RSS MB':>7} {'local img/s':>12} "
          f"{'s3 first s':>10} {'s3 img/s':>9} {'resume':>7}")
    for r in results:
        w, s3r = r["write"], r.get("read_s3", {})
        print(f"{r['library']:<11} {w['seconds']:>8} {w['files']:>6} {w['bytes'] / 1e6:>8.1f} "
              f"{str(w['peak_rss_mb']):>7} {r['read_local']['img_per_s']:>12} {str(s3r.get('first_batch_s', '-')):>10} "
              f"{str(s3r.get('img_per_s', '-')):>9} {str(r['resume_exact']):>7}"
              + (f"  s3: {s3r['error'][:80]}" if "error" in s3r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
