"""Loader cost per image on one CPU core: sslmae's loader against the SSL-MAE authors' per-image
torchvision pipeline, for the labeled, unlabeled and eval streams.

    python bench/bench_loader.py [--data DIR] [--n N] [--size 224] [--rounds R] [--out DIR]

One process, `torch.set_num_threads(1)`, CPU time (`time.process_time`: what the core spends on
us, not the time other jobs hold it; on a shared machine they still share caches and memory
bandwidth). A warm-up call of every job, then R rounds (default 5) that interleave all jobs, so
background load hits them alike; the best round of each job counts.

  theirs     per image, exactly the authors' src/data/transforms.py (800df98): PIL open +
             convert("RGB"), then their Compose and Normalize (`authors_transforms`).
  decode     bare PIL open + convert: the floor for any pipeline that decodes every image.
  worker     sslmae without the cache: `load_image(path, size)` per image (decode + resize).
  build      `build_cache(paths, size, file, workers=1)`: the decoded-image cache, built once per
             dataset and size (sslmae's default `data.cache: true`).
  (a) loader the DataLoader worker's job per batch of 64 with the cache:
             `ImageTableDataset.__getitem__` per image, `default_collate`; augmentation is handed
             to the training device, as sslmae trains. Also on a freshly opened map (a worker's
             first epoch) and with one more copy of the batch (stand-in for pin_memory's copy).
  batch      sslmae's batch step on this CPU, as `sslmae.train.module` runs it on the device, on
             stacked uint8 batches: `to_unit`, `augment_batch(x, labeled, AUTHORS_LABELED,
             AUTHORS_UNLABELED)` (all rows labeled, or none), `normalize`; eval: `normalize`. Timed here and
             in a child whose glibc reuses freed memory (`REUSE_ENV`, like a GPU's caching
             allocator: on a CPU every fresh 38.5 MB float batch is an mmap that page-faults in).
  (b) CPU train  (a) + the batch step: training on a CPU.

Ratios are theirs / ours (> 1: ours costs less CPU per image). Amortisation: epochs until the
build pays for itself against decoding every epoch, and (a)'s ratio over EPOCHS epochs with the
build included. Not counted for theirs: their per-image CPU mask generation and the collate of
float32 images (4x our uint8 bytes), both of which would make their figure worse.

Writes bench/results/loader_<YYYY-MM-DD>.json atomically and prints a table. Exits 0 with
"skipped: ..." when the dataset folder is missing.
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
from torch.utils.data import default_collate  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from sslmae.atomic import write_json  # noqa: E402
from sslmae.augment.batch import augment_batch  # noqa: E402
from sslmae.augment.pixels import MEAN, STD, normalize, to_unit  # noqa: E402
from sslmae.augment.streams import AUTHORS_LABELED, AUTHORS_UNLABELED  # noqa: E402
from sslmae.loading.cache import build_cache  # noqa: E402
from sslmae.loading.images import ImageTableDataset, load_image  # noqa: E402

BATCH = 64
EPOCHS = 30  # params.yaml train.epochs: the horizon for the amortised ratio
CACHED_PASSES = 10  # a cached pass is ~30 ms for 256 images: time 10 per round, report per pass
PIPELINES = ("labeled", "unlabeled", "eval")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
REUSE_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


# -- theirs --------------------------------------------------------------------------------


def authors_transforms(size: int) -> dict[str, T.Compose]:
    """The authors' SimMIMTransform.transform_img per stream (their Lambda convert is a no-op on RGB)."""
    crop = {"ratio": (3.0 / 4.0, 4.0 / 3.0)}
    return {
        "labeled": T.Compose([
            T.RandomResizedCrop(size, scale=(0.67, 1.0), **crop), T.RandomHorizontalFlip(),
            T.Resize((size, size)), T.ToTensor(),
        ]),
        "unlabeled": T.Compose([
            T.RandomResizedCrop(size, scale=(0.4, 1.0), **crop), T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))], p=0.5),
            T.Resize((size, size)), T.ToTensor(),
        ]),
        "eval": T.Compose([T.Resize((size, size)), T.ToTensor()]),
    }


def pil_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def run_theirs(paths: list[Path], tf: T.Compose, norm: T.Normalize) -> None:
    for p in paths:
        norm(tf(pil_rgb(p)))  # their __call__: img_raw = transform_img(img); img_norm = normalize(img_raw)


# -- ours ----------------------------------------------------------------------------------


def ours_batch(x: torch.Tensor, pipeline: str) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> encoder input, as sslmae.train.module.on_after_batch_transfer (training
    streams) or at evaluation."""
    if pipeline == "eval":
        return normalize(x)
    labeled = torch.full((len(x),), pipeline == "labeled")
    return normalize(augment_batch(to_unit(x), labeled, AUTHORS_LABELED, AUTHORS_UNLABELED))


def time_batches(imgs: list[torch.Tensor], rounds: int) -> dict[str, float]:
    """Best-round CPU seconds of each pipeline's batch step over imgs, stacked (untimed) in batches."""
    xs = [torch.stack(imgs[i:i + BATCH]) for i in range(0, len(imgs), BATCH)]
    jobs = {name: (lambda name=name: [ours_batch(x, name) for x in xs]) for name in PIPELINES}
    return {k: min(v) for k, v in time_jobs(jobs, rounds).items()}


def time_batches_reusing_memory(args: argparse.Namespace) -> dict[str, float] | None:
    """time_batches in a child process with REUSE_ENV (glibc only), or None."""
    if platform.libc_ver()[0] != "glibc":
        return None
    cmd = [sys.executable, __file__, "--batch-only", "--data", str(args.data), "--n", str(args.n),
           "--size", str(args.size), "--rounds", str(args.rounds)]
    res = subprocess.run(cmd, env={**os.environ, **REUSE_ENV}, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def cached_dataset(cache_file: Path, n: int, size: int) -> ImageTableDataset:
    """The training dataset over a freshly opened cache map, as SSLDataModule builds it (half labeled)."""
    cache = np.load(cache_file, mmap_mode="r")
    paths = [Path(f"{i}") for i in range(n)]
    return ImageTableDataset(paths, np.zeros((n, 8), np.uint8), np.arange(n) % 2 == 0, size, cache=cache,
                             rows=np.arange(n))


def run_loader(ds: ImageTableDataset, passes: int = 1, pin_copy: bool = False) -> list[torch.Tensor]:
    """A DataLoader worker's job with the cache, `passes` times: __getitem__ per image, default_collate
    per batch; pin_copy: one more copy of each uint8 batch (the pin-memory thread's memcpy)."""
    for _ in range(passes):
        out = []
        for i in range(0, len(ds), BATCH):
            imgs, _y, _lab = default_collate([ds[j] for j in range(i, min(i + BATCH, len(ds)))])
            out.append(imgs.clone() if pin_copy else imgs)
    return out


# -- timing --------------------------------------------------------------------------------


def time_jobs(jobs: dict, rounds: int) -> dict[str, list[float]]:
    """Warm-up, then `rounds` interleaved rounds: CPU seconds of every call of every job."""
    for job in jobs.values():
        job()
    raw: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            t0 = time.process_time()
            job()
            raw[name].append(time.process_time() - t0)
    return raw


def loader_jobs(paths: list[Path], size: int, tmp: Path, decoded: dict) -> tuple[dict, object]:
    """(name -> job over all images, same()): the *_cached jobs run CACHED_PASSES passes per call; the
    "worker" job leaves its images in decoded["imgs"]; same() says whether the cache holds them."""
    read_file = build_cache(paths, size, tmp / "read.npy")  # read by the loader jobs, never rewritten
    ds = cached_dataset(read_file, len(paths), size)
    norm, tfs = T.Normalize(MEAN, STD), authors_transforms(size)
    jobs = {f"theirs_{k}": (lambda tf=tf: run_theirs(paths, tf, norm)) for k, tf in tfs.items()}
    jobs.update({
        "decode_pil": lambda: [pil_rgb(p) for p in paths],
        "worker": lambda: decoded.update(imgs=[load_image(p, size) for p in paths]),
        "build": lambda: build_cache(paths, size, tmp / "built.npy", workers=1),
        "loader_cached": lambda: run_loader(ds, CACHED_PASSES),
        "loader_cached_fresh_map": lambda: [run_loader(cached_dataset(read_file, len(paths), size))
                                            for _ in range(CACHED_PASSES)],
        "loader_cached_pin_copy": lambda: run_loader(ds, CACHED_PASSES, pin_copy=True),
    })
    return jobs, lambda: torch.equal(torch.cat(run_loader(ds)), torch.stack(decoded["imgs"]))


def pick_images(data: Path, n: int) -> list[Path]:
    """n images spread evenly over the sorted folder (all classes, a fixed choice)."""
    folder = data / "images" if (data / "images").is_dir() else data
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
    return files[:: max(1, len(files) // n)][:n] if files else []


# -- summary -------------------------------------------------------------------------------


def summarize(ms: dict[str, float], batch: dict, reuse: dict | None, n: int) -> dict[str, dict]:
    """Per pipeline: ms per image of each part and the ratios theirs / ours."""
    out = {}
    for name in PIPELINES:
        theirs, worker, loader, b = ms[f"theirs_{name}"], ms["worker"], ms["loader_cached"], 1e3 * batch[name] / n
        out[name] = {
            "theirs_ms_per_img": theirs,
            "a_loader_ms_per_img": loader,
            "ratio_a_loader": theirs / loader,
            "ratio_a_loader_fresh_map": theirs / ms["loader_cached_fresh_map"],
            "ratio_a_loader_plus_pin_copy": theirs / ms["loader_cached_pin_copy"],
            f"ratio_a_loader_over_{EPOCHS}_epochs_incl_build": theirs * EPOCHS / (ms["build"] + loader * EPOCHS),
            "batch_step_ms_per_img": b,
            "b_cpu_train_ms_per_img": loader + b,
            "ratio_b_cpu_train": theirs / (loader + b),
            "ours_uncached_ms_per_img": worker + b,  # decode per image + batch step on the CPU
            "ratio_uncached": theirs / (worker + b),
            "ratio_worker_only": theirs / worker,  # uncached, batch step on the device
            "ratio_bound_decode_only": theirs / ms["decode_pil"],
        }
        if reuse is not None:
            out[name]["batch_step_reuse_ms_per_img"] = 1e3 * reuse[name] / n
            out[name]["ratio_b_cpu_train_reuse"] = theirs / (loader + 1e3 * reuse[name] / n)
    return out


def print_table(res: dict) -> None:
    ms, reuse = res["ms_per_img"], res["reuse_env"] is not None
    print(f"loader, CPU ms per image on ONE core (best of {res['rounds']} rounds); cpu {res['machine']['cpu_model']}, "
          f"size {res['image_size']}, n {res['n_images']}, batch {BATCH}, load {res['machine']['loadavg_1_5_15'][0]:.2f}")
    head = (f"{'pipeline':<10}{'theirs':>8}{'(a)loader':>10}{'ratio':>8}{'1st-ep':>8}{'+pin':>8}{f'@{EPOCHS}ep':>8}"
            f"{'batch':>8}{'(b)cpu':>8}{'ratio':>7}" + (f"{'batch*':>8}{'ratio*':>8}" if reuse else ""))
    print(head + "\n" + "-" * len(head))
    for name, r in res["pipelines"].items():
        print(f"{name:<10}{r['theirs_ms_per_img']:>8.2f}{r['a_loader_ms_per_img']:>10.3f}{r['ratio_a_loader']:>7.1f}x"
              f"{r['ratio_a_loader_fresh_map']:>7.1f}x{r['ratio_a_loader_plus_pin_copy']:>7.1f}x"
              f"{r[f'ratio_a_loader_over_{EPOCHS}_epochs_incl_build']:>7.1f}x"
              f"{r['batch_step_ms_per_img']:>8.2f}{r['b_cpu_train_ms_per_img']:>8.2f}{r['ratio_b_cpu_train']:>6.2f}x"
              + (f"{r['batch_step_reuse_ms_per_img']:>8.2f}{r['ratio_b_cpu_train_reuse']:>7.2f}x" if reuse else ""))
    be = res["cache"]["break_even_epochs_vs_uncached"]
    print(f"(a) cache row read + collate, augmentation on the device; 1st-ep: a fresh map; +pin: one more copy; "
          f"@{EPOCHS}ep: (a) with the build over {EPOCHS} epochs.\nbatch: our batch step on this CPU (to_unit, "
          f"augment_batch, normalize); (b) = (a) + batch" + ("; * in a child whose malloc reuses memory" if reuse else "")
          + f".\nload_image {ms['worker']:.2f}, bare PIL decode {ms['decode_pil']:.2f}, cache build {ms['build']:.2f} "
          f"ms/img (once; pays for itself after {be if be is not None else float('nan'):.2f} epochs).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    ap.add_argument("--n", type=int, default=256, help="images timed per job (default 256)")
    ap.add_argument("--size", type=int, default=224, help="output image size (default 224)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts (default 5)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--batch-only", action="store_true", help=argparse.SUPPRESS)  # the REUSE_ENV child
    args = ap.parse_args(argv)
    if args.n < 1 or args.size < 8 or args.rounds < 1:
        ap.error("--n >= 1, --size >= 8 and --rounds >= 1 required")
    paths = pick_images(args.data, args.n) if args.data.is_dir() else []
    if not paths:
        print(f"skipped: dataset not found (no images in {args.data})")
        return 0
    torch.set_num_threads(1)  # one core: per-core figures
    torch.manual_seed(0)
    if args.batch_only:
        print(json.dumps(time_batches([load_image(p, args.size) for p in paths], args.rounds)))
        return 0

    n, decoded = len(paths), {}
    with tempfile.TemporaryDirectory(prefix="bench_cache_") as tmp:
        jobs, same = loader_jobs(paths, args.size, Path(tmp), decoded)
        raw = time_jobs(jobs, args.rounds)
        if not same():
            raise SystemExit("cached pixels differ from load_image: the benchmark would compare different data")
    per_call = {k: CACHED_PASSES if k.startswith("loader_cached") else 1 for k in raw}
    ms = {k: 1e3 * min(v) / per_call[k] / n for k, v in raw.items()}
    batch, reuse = time_batches(decoded["imgs"], args.rounds), time_batches_reusing_memory(args)

    today = dt.date.today().isoformat()
    res = {
        "benchmark": "bench/bench_loader.py", "date": today,
        "unit": "CPU ms per image (1 process, torch.set_num_threads(1), time.process_time)",
        "machine": {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "loadavg_1_5_15": list(os.getloadavg()),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torchvision": torchvision.__version__, "pillow": Image.__version__,
                    "torch_threads": torch.get_num_threads()},
        "dataset": str(args.data), "n_images": n, "image_size": args.size, "batch_size": BATCH,
        "rounds": args.rounds, "reuse_env": REUSE_ENV if reuse is not None else None,
        "theirs": "the authors' src/data/transforms.py at 800df98 (SimMIMTransform), exact settings",
        "ours_augment": "augment_batch(to_unit(x), labeled, AUTHORS_LABELED, AUTHORS_UNLABELED), then normalize",
        "ms_per_img": ms,
        "cache": {"bytes_per_img": 3 * args.size * args.size, "pixels_identical_to_load_image": True,
                  "break_even_epochs_vs_uncached": (ms["build"] / (ms["worker"] - ms["loader_cached"])
                                                    if ms["worker"] > ms["loader_cached"] else None)},
        "pipelines": summarize(ms, batch, reuse, n),
        "batch_step_cpu_s": batch, "batch_step_reuse_cpu_s": reuse,
        "cached_passes_per_call": CACHED_PASSES, "raw_cpu_seconds": raw,
    }
    out = args.out / f"loader_{today}.json"
    write_json(out, res)  # temporary name, then rename
    print_table(res)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
