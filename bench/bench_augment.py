"""Batch augmentation per image on one CPU core: sslmae's hand-written ops against kornia.augmentation.

    python bench/bench_augment.py [--data DIR] [--n N] [--sizes 224 64] [--batch 64] [--rounds R] [--out DIR]

Both implementations get the same float batches (N, 3, S, S) in [0, 1] (UCM images decoded and
resized by `sslmae.loading.images.load_image`, then `to_unit`) and the same settings, the authors'
(`AUTHORS_LABELED`, `AUTHORS_UNLABELED`; `kornia_stream` builds kornia's pipeline from them):

  ours     `augment_batch(x, labeled, AUTHORS_LABELED, AUTHORS_UNLABELED)`, as training calls it.
           "ours, labeled stream alone" passes AUTHORS_LABELED for both streams: colour ops off.
  kornia   one `kornia.augmentation.AugmentationSequential` per stream: RandomResizedCrop (default
           cropping_mode "slice"), flips, ColorJitter(p), RandomGrayscale, RandomGaussianBlur;
           a mixed batch is split by stream and put back together.
  kornia_resample   the same with RandomResizedCrop(cropping_mode="resample") (one warp per batch).

Streams: labeled (every row labeled), unlabeled (none), mixed (first half unlabeled, second half
labeled: the layout of sslmae's semi-supervised batches). Also, for the unlabeled stream, the two halves apart: geometric (crop and flips) and
photometric (jitter, grayscale, blur).

Before timing, `check` runs each implementation on a batch of copies of one image: same shape and
dtype as the input, values in [0, 1], every row different (per-image randomness), and the share of
grayscale rows (0.2 expected for unlabeled rows, 0 for labeled ones).

One process, `torch.set_num_threads(1)`, CPU time (`time.process_time`) per image; a warm-up call,
then R rounds (default 5) that interleave every job, and the best round counts. CPU only: this
measures no GPU. Memory: a float batch of 64 x 224 px is 38.5 MB, and glibc's default malloc gives
every such buffer a fresh mmap that page-faults in, while smaller temporaries are served by mmap or
the heap depending on what was freed before (so one job's figure would depend on the jobs before
it). `--allocator reuse` (the default) reruns the script in a child with `REUSE_ENV`, whose glibc
keeps freed memory for reuse, as a GPU's caching allocator does; `--allocator default` times
in this process as it is. Writes bench/results/augment_<YYYY-MM-DD>.json atomically and prints a table.
Exits 0 with "skipped: ..." when the dataset folder is missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from sslmae.atomic import write_json  # noqa: E402
from sslmae.augment.batch import augment_batch, color_ops, crop_and_flip  # noqa: E402
from sslmae.augment.pixels import to_unit  # noqa: E402
from sslmae.augment.streams import AUTHORS_LABELED, AUTHORS_UNLABELED, StreamAugment  # noqa: E402
from sslmae.loading.images import load_image  # noqa: E402

STREAMS = ("labeled", "unlabeled", "mixed")
CHECK_COPIES = 128  # rows of the check batch: copies of one image
UNIT_TOL = 1e-6  # [0, 1] up to float rounding (a blur of 1.0 pixels can give 1.0000002)
REUSE_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4000000000"}  # as bench_loader.py
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
L, U = AUTHORS_LABELED, AUTHORS_UNLABELED


def kornia_stream(s: StreamAugment, size: int, cropping_mode: str = "slice", parts: str = "all"):
    """kornia's AugmentationSequential for one stream's settings; parts: all | geometric | photometric."""
    import kornia.augmentation as K  # optional dependency: only this benchmark uses kornia

    if s.rot90:
        raise ValueError("kornia_stream: rot90 (sslmae's option) has no kornia counterpart here")
    geo = [K.RandomResizedCrop((size, size), scale=s.crop_scale, ratio=s.crop_ratio, cropping_mode=cropping_mode),
           K.RandomHorizontalFlip(p=s.hflip), K.RandomVerticalFlip(p=s.vflip)]
    photo = []
    if s.jitter_p > 0:
        photo.append(K.ColorJitter(*s.jitter, p=s.jitter_p))
    if s.grayscale_p > 0:
        photo.append(K.RandomGrayscale(p=s.grayscale_p))
    if s.blur_p > 0:
        photo.append(K.RandomGaussianBlur((s.blur_kernel,) * 2, s.blur_sigma, p=s.blur_p))
    ops = {"all": geo + photo, "geometric": geo, "photometric": photo}[parts]
    return K.AugmentationSequential(*[op for op in ops if getattr(op, "p", 1.0) > 0])


def by_stream(lab_fn, unl_fn):
    """f(x, labeled): lab_fn on the labeled rows, unl_fn on the others (a mixed batch is split)."""
    def f(x: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        if bool(labeled.all()):
            return lab_fn(x)
        if not bool(labeled.any()):
            return unl_fn(x)
        out = torch.empty_like(x)
        out[labeled], out[~labeled] = lab_fn(x[labeled]), unl_fn(x[~labeled])
        return out
    return f


def implementations(size: int) -> dict:
    """name -> f(x, labeled) -> augmented x; every f keeps x's shape, dtype and [0, 1] range."""
    kl, ku = kornia_stream(L, size), kornia_stream(U, size)
    klr, kur = kornia_stream(L, size, "resample"), kornia_stream(U, size, "resample")
    return {
        "ours": lambda x, lab: augment_batch(x, lab, L, U),
        "ours_labeled_stream_alone": lambda x, lab: augment_batch(x, lab, L, L),
        "kornia": by_stream(kl, ku),
        "kornia_resample": by_stream(klr, kur),
    }


def parts(size: int) -> dict:
    """The unlabeled stream in two halves: name -> f(x) -> x."""
    def none(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), dtype=torch.bool)

    return {
        "ours_geometric": lambda x: crop_and_flip(x, none(x), L, U),
        "ours_photometric": lambda x: color_ops(x, none(x), L, U),
        "kornia_geometric": kornia_stream(U, size, parts="geometric"),
        "kornia_photometric": kornia_stream(U, size, parts="photometric"),
    }


def streams_of(name: str) -> tuple[str, ...]:
    """The streams an implementation is timed on ("labeled stream alone" only makes sense for labeled rows)."""
    return ("labeled",) if name == "ours_labeled_stream_alone" else STREAMS


def stream_mask(stream: str, n: int) -> torch.Tensor:
    """(n,) bool: which rows are labeled for the stream."""
    return {"labeled": torch.ones(n, dtype=torch.bool), "unlabeled": torch.zeros(n, dtype=torch.bool),
            "mixed": torch.arange(n) >= n // 2}[stream]  # as PairedBatchSampler: B unlabeled, then B labeled


def gray_rows(y: torch.Tensor) -> torch.Tensor:
    return (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)


def check(fn, img: torch.Tensor, stream: str, copies: int) -> dict:
    """fn on `copies` copies of one (3, S, S) float image: shape, range, per-image randomness."""
    x = img.unsqueeze(0).repeat(copies, 1, 1, 1)
    labeled = stream_mask(stream, copies)
    y, y2 = fn(x, labeled), fn(x, labeled)
    rows = y.flatten(1)
    distinct = len(torch.unique(rows, dim=0))
    gray = gray_rows(y)
    return {
        "shape_ok": tuple(y.shape) == tuple(x.shape) and y.dtype == x.dtype,
        "min": float(y.min()), "max": float(y.max()),  # float rounding may overshoot by an ulp or two
        "in_unit_range": bool(y.min() >= -UNIT_TOL and y.max() <= 1 + UNIT_TOL),
        "distinct_rows": distinct, "rows": copies, "differs_between_calls": not torch.equal(y, y2),
        "gray_share_labeled_rows": float(gray[labeled].float().mean()) if labeled.any() else None,
        "gray_share_unlabeled_rows": float(gray[~labeled].float().mean()) if (~labeled).any() else None,
    }


def best_cpu_seconds(jobs: dict, rounds: int) -> tuple[dict, dict]:
    """Warm-up, then `rounds` interleaved rounds of every job: (best CPU s, all CPU s) per job."""
    for job in jobs.values():
        job()
    raw: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            t0 = time.process_time()
            job()
            raw[name].append(time.process_time() - t0)
    return {k: min(v) for k, v in raw.items()}, raw


def pick_images(data: Path, n: int) -> list[Path]:
    """n images spread evenly over the sorted folder (all classes, a fixed choice)."""
    folder = data / "images" if (data / "images").is_dir() else data
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    return files[:: max(1, len(files) // n)][:n] if files else []


def bench_size(paths: list[Path], size: int, batch: int, rounds: int) -> dict:
    """Checks and timings at one image size, on the same float batches for every implementation."""
    imgs = torch.stack([load_image(p, size) for p in paths])
    batches = [to_unit(imgs[i:i + batch]) for i in range(0, len(imgs), batch)]
    n = sum(len(b) for b in batches)
    impls = implementations(size)
    checks = {name: {s: check(fn, batches[0][0], s, CHECK_COPIES) for s in streams_of(name)}
              for name, fn in impls.items()}
    jobs = {}
    for name, fn in impls.items():
        for s in streams_of(name):
            masks = [stream_mask(s, len(b)) for b in batches]
            jobs[f"{name}/{s}"] = lambda fn=fn, masks=masks: [fn(b, m) for b, m in zip(batches, masks)]
    for name, fn in parts(size).items():
        jobs[f"{name}/unlabeled"] = lambda fn=fn: [fn(b) for b in batches]
    best, raw = best_cpu_seconds(jobs, rounds)
    ms = {k: 1e3 * v / n for k, v in best.items()}
    return {
        "n_images": n, "checks": checks,
        "ms_per_img": ms, "img_s_per_core": {k: 1e3 / v for k, v in ms.items()},
        "kornia_over_ours": {s: ms[f"kornia/{s}"] / ms[f"ours/{s}"] for s in STREAMS},
        "raw_cpu_seconds": raw,
    }


def machine() -> dict:
    import kornia

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "unknown")
    return {"cpu_model": cpu, "logical_cpus": os.cpu_count(), "loadavg_1_5_15": list(os.getloadavg()),
            "python": platform.python_version(), "torch": torch.__version__, "kornia": kornia.__version__,
            "torch_threads": torch.get_num_threads(), "gpu": "none: CPU only"}


def print_table(result: dict) -> None:
    print(f"batch augmentation, CPU ms per image on ONE core (best of {result['rounds']} rounds); "
          f"cpu {result['machine']['cpu_model']}, load {result['machine']['loadavg_1_5_15'][0]:.2f}; no GPU; "
          f"malloc: {'reusing freed memory' if isinstance(result['allocator'], dict) else 'glibc default'}")
    for size, r in result["sizes"].items():
        names, ms = list(r["checks"]), r["ms_per_img"]
        print(f"\n{size} px, batch {result['batch']}, {r['n_images']} images")
        print(f"{'stream':<10}" + "".join(f"{n:>27}" for n in names) + f"{'kornia/ours':>12}")
        for s in STREAMS:
            cells = "".join(f"{ms[f'{n}/{s}']:>27.3f}" if f"{n}/{s}" in ms else f"{'-':>27}" for n in names)
            print(f"{s:<10}{cells}{r['kornia_over_ours'][s]:>11.2f}x")
        print("unlabeled stream in halves: " + ", ".join(
            f"{k.split('/')[0]} {v:.3f}" for k, v in ms.items() if k.split("/")[0].endswith(("geometric", "photometric"))))
        for n, c in r["checks"].items():
            ok = all(x["shape_ok"] and x["in_unit_range"] for x in c.values())
            rows = ", ".join(f"{s} {x['distinct_rows']}/{x['rows']}" for s, x in c.items())
            gray = ", ".join(f"{s} {x['gray_share_unlabeled_rows' if s == 'unlabeled' else 'gray_share_labeled_rows']:.2f}"
                             for s, x in c.items() if s != "mixed")
            print(f"check {n}: shape and [0, 1] {ok}; distinct rows {rows}; grayscale share {gray}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    ap.add_argument("--n", type=int, default=256, help="images per size (default 256)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 64], help="image sizes (default 224 64)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts (default 5)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--allocator", choices=("reuse", "default"), default="reuse",
                    help="reuse: time in a child whose glibc reuses freed memory (default); default: as it is")
    args = ap.parse_args(argv)
    if args.n < 1 or args.batch < 2 or args.rounds < 1 or min(args.sizes) < 8:
        ap.error("--n >= 1, --batch >= 2, --rounds >= 1 and every size >= 8 required")
    paths = pick_images(args.data, args.n) if args.data.is_dir() else []
    if not paths:
        print(f"skipped: dataset not found (no images in {args.data})")
        return 0

    reusing = all(os.environ.get(k) == v for k, v in REUSE_ENV.items())
    if args.allocator == "reuse" and not reusing and platform.libc_ver()[0] == "glibc":
        argv = sys.argv[1:] if argv is None else argv
        return subprocess.run([sys.executable, __file__, *argv], check=False, env={**os.environ, **REUSE_ENV}).returncode
    torch.set_num_threads(1)  # one core: per-core figures
    torch.manual_seed(0)
    today = dt.date.today().isoformat()
    result = {
        "benchmark": "bench/bench_augment.py", "date": today, "machine": machine(),
        "unit": "CPU ms per image (1 process, torch.set_num_threads(1), time.process_time)",
        "dataset": str(args.data), "batch": args.batch, "rounds": args.rounds,
        "allocator": {"env": REUSE_ENV} if reusing else "glibc default (or not glibc)",
        "settings": {"labeled": L.__dict__, "unlabeled": U.__dict__},
        "sizes": {str(s): bench_size(paths, s, args.batch, args.rounds) for s in args.sizes},
    }
    out = args.out / f"augment_{today}{'' if reusing else '_default-malloc'}.json"
    write_json(out, result)  # temporary name, then rename
    print_table(result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
