"""Loader throughput per CPU core: our decode + batch augmentation vs the SSL-MAE authors'
per-image torchvision transforms, for the labeled, unlabeled and eval pipelines.

    python bench/bench_loader.py [--data DIR] [--n N] [--size 224] [--rounds R] [--out DIR]

One process, `torch.set_num_threads(1)`: every figure is images per second on ONE CPU
core. Time is the process's CPU time (what the core spends on us, not counting time other
jobs hold it on a shared machine; they still share caches and memory bandwidth, so run on
a quiet machine for clean figures); wall-clock figures are recorded too. Every pipeline
runs once as warm-up, then R rounds (default 5) interleave all pipelines, so background
load hits them alike, and the best round of each counts.

  theirs  per image: PIL open + convert("RGB"), then torchvision transforms as in the
          authors' code (labeled / unlabeled / eval: `theirs()` below).
  ours    per image: sslmae.data.images.load_image(path, size) (decode + resize: the
          DataLoader worker's job); then per batch of 64: the batch augmentation that
          sslmae runs on the training device, here on the CPU (`OURS` below).

Also reported: the split of ours into the worker share (load_image) and the batch share,
per batch stage; the batch share once more in a child process whose allocator reuses
freed memory (`REUSE_ENV`: on a CPU, fresh 38.5 MB batch buffers cost page faults that a
GPU's caching allocator never pays); the worker-only ratio (the CPU cost per image when
the batch step runs on the GPU, as in training); and a bare PIL decode (open + convert,
no resize): the floor for any pipeline that decodes every JPEG, hence the best ratio
reachable without caching decoded images.

Cached path (sslmae's default, `data.cache: true`, `sslmae.data.cache`): every image is
decoded once into a uint8 (N, S, S, 3) .npy that the loaders memory-map. Measured in the
same run, on the same images:

  cache build   `build_cache(paths, size, file, workers=1)`: one decode + resize pass plus
                the write, CPU time per image (paid once per dataset and size, not per epoch).
  (a) loader    (timed over CACHED_PASSES passes per round, reported per pass)
                the DataLoader worker's whole job per batch of 64 with the cache:
                `ImageTableDataset.__getitem__` (a view of the cached row, target, flag) for
                each image, then `default_collate` (the copy into the batch). Augmentation
                is handed off to the training device, as sslmae trains. Timed on a mapping
                the process has already touched (persistent workers, from the 2nd epoch on)
                and, separately, on a freshly opened map (a worker's first epoch: page-table
                faults on pages already in the page cache). Also reported: (a) plus one more
                copy of the uint8 batch, a stand-in for the pin-memory thread's copy when
                `pin_memory` is on (GPU machines; it cannot be timed without CUDA).
  (b) CPU train (a) + our batch augmentation run on the CPU (the batch stages above, minus
                their own stack, which (a)'s collate already did): as if training on a CPU;
                with the default allocator, and (*) in the memory-reusing child process.

Amortisation of the build: epochs after which caching has paid for itself against decoding
every epoch (build / (uncached worker - (a))), epochs E after which (a) including the build
reaches the 3x target against theirs (theirs * E >= 3 * (build + (a) * E)), and the ratio
over 30 epochs (params.yaml's train.epochs) with the build included.

Not counted for theirs: their DataLoader's collate of float32 images (4x the bytes of our
uint8), which would only make their figure worse.

Writes bench/results/loader_<YYYY-MM-DD>.json (atomically) and prints a table. Exits 0 with
"skipped: dataset not found" when the dataset folder is missing.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

from sslmae.atomic import write_json  # noqa: E402
from sslmae.data.augment import MEAN, STD, normalize, random_affine  # noqa: E402
from sslmae.data.color import color_jitter, gaussian_blur, random_grayscale  # noqa: E402
from sslmae.data.cache import build_cache  # noqa: E402
from sslmae.data.images import ImageTableDataset, load_image  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

BATCH = 64
EPOCHS = 30  # params.yaml train.epochs: the horizon for the amortised ratio
CACHED_PASSES = 10  # a cached pass takes ~30 ms for 256 images: time 10 per round, report per pass
PIPELINES = ("labeled", "unlabeled", "eval")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


# -- theirs: per-image torchvision on PIL, as in the SSL-MAE authors' code ---------------


def theirs(size: int) -> dict:
    norm = T.Normalize(MEAN, STD)
    return {
        "labeled": T.Compose([
            T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm,
        ]),
        "unlabeled": T.Compose([
            T.RandomResizedCrop(size, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(23, sigma=(0.1, 2.0))], p=0.5),
            T.ToTensor(),
            norm,
        ]),
        "eval": T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), norm]),
    }


def pil_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def run_theirs(paths: list[Path], tf) -> None:
    for p in paths:
        tf(pil_rgb(p))


# -- ours: load_image per image, then batch augmentation ------------------------------------


def to_unit_float(u: torch.Tensor) -> torch.Tensor:
    return u.float().div_(255.0)


def normalize_float_(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] -> ImageNet-normalised, in place (augment.normalize
    without the uint8 -> float step; x is the pipeline's own buffer by then)."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


# Each of our pipelines is a list of named batch stages, (N, 3, S, S) uint8 in, normalised
# float out, so the run also yields where the time goes.
OURS = {
    # As sslmae.train.module: normalise, then warp the normalised floats. Crop area from
    # 0.08 like the authors' RandomResizedCrop default (the cost does not depend on it).
    "labeled": [
        ("normalize", normalize),
        ("random_affine", lambda x: random_affine(x, scale_min=0.08)),
    ],
    # Colour ops need [0, 1] values, so: uint8 -> [0, 1], warp (bilinear + reflection stays
    # in [0, 1]), the authors' photometric chain in their order (jitter p=0.8, grayscale
    # p=0.2, blur p=0.5 with sigma in [0.1, 2]), and normalisation last.
    "unlabeled": [
        ("to_unit_float", to_unit_float),
        ("random_affine", lambda x: random_affine(x, scale_min=0.2)),
        ("color_jitter", lambda x: color_jitter(x, 0.4, 0.4, 0.4, 0.1, p=0.8)),
        ("random_grayscale", lambda x: random_grayscale(x, p=0.2)),
        ("gaussian_blur", lambda x: gaussian_blur(x, p=0.5, sigma=(0.1, 2.0))),
        ("normalize_float", normalize_float_),
    ],
    "eval": [("normalize", normalize)],
}


def decode_ours(paths: list[Path], size: int) -> list[torch.Tensor]:
    return [load_image(p, size) for p in paths]


def run_batches(imgs: list[torch.Tensor], stages, acc: dict[str, float]) -> None:
    """Batches of BATCH images through the stages; adds each stage's CPU seconds to acc."""
    def lap(name: str, t0: float) -> float:
        now = time.process_time()
        acc[name] = acc.get(name, 0.0) + now - t0
        return now

    for i in range(0, len(imgs), BATCH):
        t = time.process_time()
        x = torch.stack(imgs[i : i + BATCH])  # the DataLoader's collate
        t = lap("stack", t)
        for name, fn in stages:
            x = fn(x)
            t = lap(name, t)


# -- ours, cached: the worker reads rows of the decoded-image cache ------------------------


def cached_dataset(cache: np.ndarray, paths: list[Path], size: int) -> ImageTableDataset:
    """The training dataset over the cache, as SSLDataModule builds it (8 labels, half labeled)."""
    n = len(paths)
    labels = np.zeros((n, 8), np.uint8)
    return ImageTableDataset(paths, labels, np.arange(n) % 2 == 0, size, cache=cache, rows=np.arange(n))


def run_cached_worker(ds: ImageTableDataset, pin_copy: bool = False) -> list:
    """A DataLoader worker's job with the cache: __getitem__ per image, default_collate per
    batch; pin_copy: one more copy of the uint8 batch (the pin-memory thread's memcpy)."""
    out = []
    for i in range(0, len(ds), BATCH):
        imgs, y, lab = default_collate([ds[j] for j in range(i, min(i + BATCH, len(ds)))])
        if pin_copy:
            imgs = imgs.clone()
        out.append(imgs)
    return out


# -- timing ------------------------------------------------------------------------------


def timed(fn) -> tuple[float, float]:
    """(cpu seconds of this process, wall seconds) for one call of fn."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pick_images(data: Path, n: int) -> list[Path]:
    """n images spread evenly over the sorted folder (all classes, fixed choice)."""
    folder = data / "images" if (data / "images").is_dir() else data
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        return []
    step = max(1, len(files) // n)
    return files[::step][:n]


# On a CPU a float batch of 64 x 3 x 224 x 224 is 38.5 MB: above glibc's 32 MB cap on its
# mmap threshold, so every such temporary is a fresh mmap whose pages fault in one by one
# (measured: 80 % of augment.normalize's time is page faults). A GPU's caching allocator
# reuses its blocks instead. The batch step is therefore timed twice: in this process
# (default allocator: what CPU training gets today) and in a child process whose glibc
# keeps freed memory for reuse (the GPU-like case, and what LD_PRELOAD jemalloc gives).
REUSE_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


def time_batches(imgs: list[torch.Tensor], rounds: int) -> dict[str, dict]:
    """Best-of-rounds CPU seconds of each of our batch pipelines over imgs, with the stage
    split of its best round."""
    out: dict[str, dict] = {}
    for name in PIPELINES:  # warm-up
        run_batches(imgs, OURS[name], {})
    trials: dict[str, list[tuple[float, dict]]] = {k: [] for k in PIPELINES}
    for _ in range(rounds):
        for name in PIPELINES:
            acc: dict[str, float] = {}
            cpu, _wall = timed(lambda: run_batches(imgs, OURS[name], acc))
            trials[name].append((cpu, acc))
    for name, ts in trials.items():
        cpu, acc = min(ts, key=lambda t: t[0])
        out[name] = {"cpu_s": cpu, "stages_s": acc}
    return out


def batch_only_child(args) -> int:
    """--batch-only: decode (untimed), time our batch step, print JSON on stdout."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    imgs = decode_ours(pick_images(args.data, args.n), args.size)
    print(json.dumps(time_batches(imgs, args.rounds)))
    return 0


def time_batches_reusing_memory(args) -> dict[str, dict] | None:
    """time_batches in a child process with REUSE_ENV (glibc only), or None."""
    if platform.libc_ver()[0] != "glibc":
        return None
    cmd = [sys.executable, __file__, "--batch-only", "--data", str(args.data), "--n", str(args.n),
           "--size", str(args.size), "--rounds", str(args.rounds)]
    res = subprocess.run(cmd, env={**os.environ, **REUSE_ENV}, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    ap.add_argument("--n", type=int, default=256, help="images timed per pipeline (default 256)")
    ap.add_argument("--size", type=int, default=224, help="output image size (default 224)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts (default 5)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--batch-only", action="store_true", help=argparse.SUPPRESS)  # the child
    args = ap.parse_args(argv)
    if args.n < 1 or args.size < 8 or args.rounds < 1:
        ap.error("--n >= 1, --size >= 8 and --rounds >= 1 required")

    if not args.data.is_dir():
        print(f"skipped: dataset not found at {args.data}")
        return 0
    paths = pick_images(args.data, args.n)
    if not paths:
        print(f"skipped: dataset not found (no images in {args.data})")
        return 0
    if args.batch_only:
        return batch_only_child(args)
    n = len(paths)

    torch.set_num_threads(1)  # one core: per-core figures
    torch.manual_seed(0)
    tv = theirs(args.size)

    # Per-image jobs, each over all n images; interleaved rounds, best round counts.
    decoded: dict[str, list[torch.Tensor]] = {}

    def ours_decode():
        decoded["imgs"] = decode_ours(paths, args.size)

    # The cache: one file read by the loader jobs, built up front; the build job writes
    # another file each round (replacing the last), so the map being read never changes.
    tmpdir = tempfile.TemporaryDirectory(prefix="bench_cache_")
    read_file = build_cache(paths, args.size, Path(tmpdir.name) / "read.npy")
    built_file = Path(tmpdir.name) / "built.npy"
    cache = np.load(read_file, mmap_mode="r")
    ds_cached = cached_dataset(cache, paths, args.size)

    def fresh_map_worker():  # a worker's first epoch: a new map, pages not yet in its page table
        for _ in range(CACHED_PASSES):
            run_cached_worker(cached_dataset(np.load(read_file, mmap_mode="r"), paths, args.size))

    def cached_worker(pin_copy: bool = False):
        for _ in range(CACHED_PASSES):
            run_cached_worker(ds_cached, pin_copy)

    # jobs that go over the images several times per timing; their figures are per pass
    passes = {k: CACHED_PASSES for k in ("ours_cached_worker", "ours_cached_worker_fresh_map",
                                         "ours_cached_worker_pin_copy")}
    jobs = {
        "decode_pil": lambda: [pil_rgb(p) for p in paths],
        "ours_worker": ours_decode,
        "cache_build": lambda: build_cache(paths, args.size, built_file, workers=1),
        "ours_cached_worker": cached_worker,
        "ours_cached_worker_fresh_map": fresh_map_worker,
        "ours_cached_worker_pin_copy": lambda: cached_worker(pin_copy=True),
    }
    for name in PIPELINES:
        jobs[f"theirs_{name}"] = lambda tf=tv[name]: run_theirs(paths, tf)
    for job in jobs.values():  # warm-up: file cache, lazy inits
        job()
    rounds: dict[str, list[tuple[float, float]]] = {k: [] for k in jobs}
    for _ in range(args.rounds):
        for name, job in jobs.items():
            c, w = timed(job)
            rounds[name].append((c / passes.get(name, 1), w / passes.get(name, 1)))
    best = {k: min(c for c, _ in v) for k, v in rounds.items()}
    # the cache holds exactly what decoding gives (same pixels, so same training)
    same = torch.equal(torch.cat(run_cached_worker(ds_cached)), torch.stack(decoded["imgs"]))
    if not same:
        raise SystemExit("cached pixels differ from load_image: the benchmark compares different data")
    del ds_cached, cache
    tmpdir.cleanup()

    batch_default = time_batches(decoded["imgs"], args.rounds)
    batch_reuse = time_batches_reusing_memory(args)

    def ms(seconds: float) -> float:
        return 1e3 * seconds / n

    worker = best["ours_worker"]
    cached = best["ours_cached_worker"]
    cached_pin = best["ours_cached_worker_pin_copy"]
    build = best["cache_build"]

    def amortisation(t_theirs: float, t_loop: float) -> dict:
        """Per-image CPU t_loop per epoch after a one-time build: epochs to reach 3x theirs
        (None: never), and the ratio over EPOCHS epochs, build included."""
        gap = t_theirs - 3.0 * t_loop
        return {
            "epochs_to_3x_incl_build": (3.0 * build / gap) if gap > 0 else None,
            f"ratio_over_{EPOCHS}_epochs_incl_build": t_theirs * EPOCHS / (build + t_loop * EPOCHS),
        }

    pipelines = {}
    for name in PIPELINES:
        t_theirs = best[f"theirs_{name}"]
        t_ours = worker + batch_default[name]["cpu_s"]
        r = {
            "theirs_img_s_per_core": n / t_theirs,
            "ours_img_s_per_core": n / t_ours,
            "ratio_ours_over_theirs": t_theirs / t_ours,
            "theirs_ms_per_img": ms(t_theirs),
            "ours_worker_ms_per_img": ms(worker),
            "ours_batch_ms_per_img": ms(batch_default[name]["cpu_s"]),
            # Where the batch step spends its time (its best round), ms per image.
            "ours_batch_stages_ms_per_img": {k: ms(v) for k, v in batch_default[name]["stages_s"].items()},
            # The worker share alone: the CPU cost per image when the batch step runs on a GPU.
            "ratio_worker_only": t_theirs / worker,
            # Upper bound for any pipeline that PIL-decodes every image (decode is unavoidable).
            "ratio_bound_decode_only": t_theirs / best["decode_pil"],
        }
        # Cached path. (a) the loader alone, augmentation on the device.
        aug = batch_default[name]["cpu_s"] - batch_default[name]["stages_s"].get("stack", 0.0)
        r["cached"] = {
            "a_loader_ms_per_img": ms(cached),
            "a_loader_img_s_per_core": n / cached,
            "ratio_a_loader": t_theirs / cached,
            "a_loader_fresh_map_ms_per_img": ms(best["ours_cached_worker_fresh_map"]),
            "ratio_a_loader_fresh_map": t_theirs / best["ours_cached_worker_fresh_map"],
            "a_loader_plus_pin_copy_ms_per_img": ms(cached_pin),
            "ratio_a_loader_plus_pin_copy": t_theirs / cached_pin,
            # (b) the loader + our batch augmentation on this CPU (default allocator)
            "b_cpu_train_ms_per_img": ms(cached + aug),
            "b_cpu_train_img_s_per_core": n / (cached + aug),
            "ratio_b_cpu_train": t_theirs / (cached + aug),
            "a_amortised": amortisation(t_theirs, cached),
            "b_amortised": amortisation(t_theirs, cached + aug),
        }
        if batch_reuse is not None:
            aug_r = batch_reuse[name]["cpu_s"] - batch_reuse[name]["stages_s"].get("stack", 0.0)
            r["cached"].update({
                "b_reuse_cpu_train_ms_per_img": ms(cached + aug_r),
                "ratio_b_reuse_cpu_train": t_theirs / (cached + aug_r),
                "b_reuse_amortised": amortisation(t_theirs, cached + aug_r),
            })
        if batch_reuse is not None:
            t_reuse = worker + batch_reuse[name]["cpu_s"]
            r.update({
                "ours_reuse_img_s_per_core": n / t_reuse,
                "ratio_ours_reuse_over_theirs": t_theirs / t_reuse,
                "ours_reuse_batch_ms_per_img": ms(batch_reuse[name]["cpu_s"]),
                "ours_reuse_batch_stages_ms_per_img": {
                    k: ms(v) for k, v in batch_reuse[name]["stages_s"].items()
                },
            })
        pipelines[name] = r

    today = dt.date.today().isoformat()
    result = {
        "benchmark": "bench/bench_loader.py",
        "date": today,
        "unit": "images per second per CPU core (1 process, torch.set_num_threads(1), CPU time)",
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "loadavg_1_5_15": list(os.getloadavg()),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": Image.__version__,
            "torch_threads": torch.get_num_threads(),
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "LD_PRELOAD"},
        },
        "dataset": str(args.data),
        "n_images": n,
        "image_size": args.size,
        "batch_size": BATCH,
        "rounds": args.rounds,
        "reuse_env": REUSE_ENV if batch_reuse is not None else None,
        "decode_pil_ms_per_img": ms(best["decode_pil"]),
        "ours_worker_ms_per_img": ms(worker),
        "cache": {
            "build_ms_per_img": ms(build),  # CPU, 1 thread: decode + resize + write, once
            "build_wall_ms_per_img": ms(min(w for _, w in rounds["cache_build"])),
            "uncached_decode_ms_per_img_per_epoch": ms(worker),  # what the build replaces, every epoch
            "loader_ms_per_img": ms(cached),
            "loader_fresh_map_ms_per_img": ms(best["ours_cached_worker_fresh_map"]),
            "loader_plus_pin_copy_ms_per_img": ms(cached_pin),
            "break_even_epochs_vs_uncached": build / (worker - cached) if worker > cached else None,
            "bytes_per_img": 3 * args.size * args.size,
            "pixels_identical_to_load_image": same,
        },
        "epochs_for_amortised_ratio": EPOCHS,
        "pipelines": pipelines,
        "target_ratio": 3.0,
        "cached_passes_per_round": CACHED_PASSES,  # raw figures of the ours_cached_* jobs are per pass
        "raw_cpu_seconds": {k: [c for c, _ in v] for k, v in rounds.items()},
        "raw_wall_seconds": {k: [w for _, w in v] for k, v in rounds.items()},
    }
    out = args.out / f"loader_{today}.json"
    write_json(out, result)  # temporary name, then rename

    print(f"loader throughput, images/s PER CPU CORE (1 process, 1 torch thread, CPU time, "
          f"best of {args.rounds})")
    print(f"cpu: {result['machine']['cpu_model']}  torch {torch.__version__}  size {args.size}  "
          f"n {n}  batch {BATCH}  load {os.getloadavg()[0]:.2f}")
    reuse = batch_reuse is not None
    head = (f"{'pipeline':<10} {'theirs':>7} {'ours':>7} {'ratio':>6}"
            + (f" {'ours*':>7} {'ratio*':>6}" if reuse else "")
            + f"   {'ours ms/img = worker + batch' + ('(*)' if reuse else ''):>34}  {'worker-only':>11}")
    print(head)
    print("-" * len(head))
    for name, r in pipelines.items():
        split = f"{r['ours_worker_ms_per_img']:.2f} + {r['ours_batch_ms_per_img']:.2f}"
        line = (f"{name:<10} {r['theirs_img_s_per_core']:>7.0f} {r['ours_img_s_per_core']:>7.0f} "
                f"{r['ratio_ours_over_theirs']:>5.2f}x")
        if reuse:
            split += f" ({r['ours_reuse_batch_ms_per_img']:.2f})"
            line += f" {r['ours_reuse_img_s_per_core']:>7.0f} {r['ratio_ours_reuse_over_theirs']:>5.2f}x"
        print(f"{line}   {split:>34}  {r['ratio_worker_only']:>10.2f}x")
    key = "ours_reuse_batch_stages_ms_per_img" if reuse else "ours_batch_stages_ms_per_img"
    for name, r in pipelines.items():
        parts = ", ".join(f"{k} {r['ours_batch_stages_ms_per_img'][k]:.2f}"
                          + (f" ({r[key][k]:.2f})" if reuse else "") for k in r[key])
        print(f"ours {name} batch stages, ms/img: {parts}")
    print("theirs ms/img: " + ", ".join(f"{k} {r['theirs_ms_per_img']:.2f}" for k, r in pipelines.items())
          + f"; bare PIL decode (open + convert, no resize) {result['decode_pil_ms_per_img']:.2f}")
    if reuse:
        print("* batch step in a child process with " + " ".join(f"{k}={v}" for k, v in REUSE_ENV.items())
              + ": freed batch buffers are reused, as a GPU's caching allocator does; without it"
              " every 38.5 MB temporary is a fresh mmap that page-faults in")
    print("worker-only: theirs / our load_image alone = the CPU cost per image when the batch "
          "step runs on the GPU (sslmae's design)")
    c = result["cache"]
    print()
    print("CACHED (data.cache: true, the default): images/s PER CPU CORE; ratio = theirs / ours")
    head = (f"{'pipeline':<10} {'theirs':>7} {'(a)loader':>10} {'ratio':>7} {'1st-epoch':>10} {'+pin':>7}"
            f" {'(b)cpu-train':>13} {'ratio':>6}" + (f" {'ratio*':>7}" if reuse else "")
            + f"  {'a:3x after':>10} {'a@' + str(EPOCHS) + 'ep':>7}")
    print(head)
    print("-" * len(head))
    for name, r in pipelines.items():
        cr = r["cached"]
        e3 = cr["a_amortised"]["epochs_to_3x_incl_build"]
        line = (f"{name:<10} {r['theirs_img_s_per_core']:>7.0f} {cr['a_loader_img_s_per_core']:>10.0f}"
                f" {cr['ratio_a_loader']:>6.1f}x {cr['ratio_a_loader_fresh_map']:>9.1f}x"
                f" {cr['ratio_a_loader_plus_pin_copy']:>6.1f}x"
                f" {cr['b_cpu_train_img_s_per_core']:>13.0f} {cr['ratio_b_cpu_train']:>5.2f}x")
        if reuse:
            line += f" {cr['ratio_b_reuse_cpu_train']:>6.2f}x"
        line += (f"  {'never' if e3 is None else f'{e3:.1f} ep':>10}"
                 f" {cr['a_amortised'][f'ratio_over_{EPOCHS}_epochs_incl_build']:>6.1f}x")
        print(line)
    print(f"(a) loader: cache row read + collate per image = {c['loader_ms_per_img']:.3f} ms "
          f"(first epoch of a fresh worker {c['loader_fresh_map_ms_per_img']:.3f}, "
          f"+pin-copy stand-in {c['loader_plus_pin_copy_ms_per_img']:.3f}); augmentation on the device")
    print("(b) cpu-train: (a) + our batch augmentation on this CPU"
          + (" (* in the memory-reusing child)" if reuse else ""))
    be = c["break_even_epochs_vs_uncached"]
    print(f"cache build, once: {c['build_ms_per_img']:.2f} ms/img CPU (1 thread; uncached decode "
          f"{c['uncached_decode_ms_per_img_per_epoch']:.2f} ms/img every epoch); pays for itself after "
          f"{'never' if be is None else f'{be:.2f}'} epochs; 'a:3x after' = epochs until (a) with the build "
          f"reaches 3x theirs, 'a@{EPOCHS}ep' = ratio over {EPOCHS} epochs with the build")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
