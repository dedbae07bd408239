"""How the shard path scales with the pool: ingest time and peak memory, split time, and the time to a
first training step and the images/s of a streamed epoch, for synthetic tiles shaped like
BigEarthNet's (120 px RGB JPEG, 43 labels, a few positive per tile).

    python bench/bench_scale.py [--sizes 10000 200000] [--train-sizes 10000] [--workers 2]
                                [--work DIR] [--out bench/results]

For each N: N tiles in the labels-csv layout (random pixels: no two alike), then, each as its own
process (its peak RSS is its own `ru_maxrss`):
  ingest   `sslmae ingest SRC --out DIR --format shards` (64 MiB shards): seconds, peak RSS of the
           main process and of the largest decode worker, shards
  split    `sslmae split DIR` at 10 % labeled: seconds, peak RSS
  train    (for --train-sizes) one epoch of `sslmae train` streaming the shards (model micro, 64 px,
           batches of 32 labeled + 32 unlabeled, data.num_workers workers): seconds to the first
           step after the process started, images/s of the epoch, peak RSS
Writes bench/results/scale_<YYYY-MM-DD>.json and prints a table.
"""

from __future__ import annotations

import argparse
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

from sslmae.atomic import write_json  # noqa: E402

LABELS = [f"class{i:02d}" for i in range(43)]
SIZE = 120


def _tiles(args: tuple[Path, int, int]) -> list[str]:
    """Write tiles [start, stop) as JPEGs; their labels.csv lines."""
    folder, start, stop = args
    lines = []
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 256, (SIZE // 8, SIZE // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(img).save(folder / "images" / f"tile{i:07d}.jpg", quality=85)
        positives = set(rng.choice(len(LABELS), size=rng.integers(1, 5), replace=False).tolist()) | {i % len(LABELS)}
        lines.append(f"tile{i:07d}," + ",".join("1" if j in positives else "0" for j in range(len(LABELS))))
    return lines


def make_source(folder: Path, n: int, workers: int) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    step = 2000
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_tiles, [(folder, s, min(s + step, n)) for s in range(0, n, step)])
        lines = [line for part in parts for line in part]
    (folder / "labels.csv").write_text("image," + ",".join(LABELS) + "\n" + "\n".join(lines) + "\n")
    return folder


def child(args: list[str], marker: str | None = None) -> dict:
    """`sslmae ARGS` in a process of its own: seconds, peak RSS (MiB) of it and of its largest worker
    process and, with `marker`, the
    seconds until a line of stderr holding it."""
    code = ("import resource, sys, json; from sslmae.cli.main import main; code = main(sys.argv[1:]); "
            "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
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
    peak, workers = next(map(int, line.split()[1:]) for line in err if line.startswith("PEAK_RSS_KIB"))
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak / 1024, 1),
            "worker_peak_rss_mib": round(workers / 1024, 1), "first_s": round(first, 1) if first
            else None, "stdout": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    ap.add_argument("--train-sizes", type=int, nargs="*", default=[10_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="keep the tiles and datasets here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sslmae-bench-scale-") as tmp:
        work = args.work or Path(tmp)
        for n in args.sizes:
            src = work / f"tiles{n}"
            if not (src / "labels.csv").is_file():
                make_source(src, n, args.workers)
            ds, split = work / f"ds{n}", work / f"split{n}.csv"
            ing = child(["ingest", str(src), "--out", str(ds), "--format", "shards", "--workers", str(args.workers + 2)])
            shards = sorted((ds / "shards").glob("*.tar"))
            row = {"n": n, "ingest_s": ing["seconds"], "ingest_peak_rss_mib": ing["peak_rss_mib"],
                   "ingest_worker_peak_rss_mib": ing["worker_peak_rss_mib"],
                   "shards": len(shards), "shard_bytes": sum(p.stat().st_size for p in shards),
                   "manifest_bytes": (ds / "manifest.parquet").stat().st_size}
            sp = child(["split", str(ds), "--out", str(split), "--fraction", "0.1"])
            row.update(split_s=sp["seconds"], split_peak_rss_mib=sp["peak_rss_mib"])
            if n in args.train_sizes:
                over = [f"data.dir={ds}", f"data.split_file={split}", "data.img_size=64", "model.backbone=micro",
                        "model.patch_size=8", "model.mask_patch_size=16", "train.epochs=1", "train.batch_size=32",
                        f"data.num_workers={args.workers}", "train.progress_bar=false", "tracking.enabled=false",
                        f"train.out_dir={work / f'train{n}'}", "train.resume=never"]
                tr = child(["train", *over], marker="train: first step")
                images = json.loads((work / f"train{n}" / "metrics.json").read_text())
                history = (work / f"train{n}" / "history.csv").read_text().splitlines()
                seen = int(history[1].split(",")[history[0].split(",").index("train_images")])
                epoch_s = float(history[1].split(",")[history[0].split(",").index("epoch_seconds")])
                row.update(train_first_step_s=tr["first_s"], train_epoch_s=epoch_s, train_images=seen,
                           train_img_per_s=round(seen / epoch_s, 1), train_peak_rss_mib=tr["peak_rss_mib"],
                           train_seconds=images["train_seconds"])
            rows.append(row)
            print(json.dumps(row))
    report = {"date": dt.date.today().isoformat(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
              "tile": f"{SIZE} px JPEG, {len(LABELS)} labels", "workers": args.workers, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"scale_{report['date']}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
