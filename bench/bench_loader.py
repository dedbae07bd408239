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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402

from sslmae.atomic import write_json  # noqa: E402
from sslmae.data.augment import MEAN, STD, normalize, random_affine  # noqa: E402
from sslmae.data.color import color_jitter, gaussian_blur, random_grayscale  # noqa: E402
from sslmae.data.images import load_image  # noqa: E402

BATCH = 64
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

    jobs = {"decode_pil": lambda: [pil_rgb(p) for p in paths], "ours_worker": ours_decode}
    for name in PIPELINES:
        jobs[f"theirs_{name}"] = lambda tf=tv[name]: run_theirs(paths, tf)
    for job in jobs.values():  # warm-up: file cache, lazy inits
        job()
    rounds: dict[str, list[tuple[float, float]]] = {k: [] for k in jobs}
    for _ in range(args.rounds):
        for name, job in jobs.items():
            rounds[name].append(timed(job))
    best = {k: min(c for c, _ in v) for k, v in rounds.items()}

    batch_default = time_batches(decoded["imgs"], args.rounds)
    batch_reuse = time_batches_reusing_memory(args)

    def ms(seconds: float) -> float:
        return 1e3 * seconds / n

    worker = best["ours_worker"]
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
        "pipelines": pipelines,
        "target_ratio": 3.0,
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
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
