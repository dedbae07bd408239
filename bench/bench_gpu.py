"""GPU benchmark of SSL-MAE training, in one run:

  step        the project's training step (forward + backward + fused AdamW step, bf16
              autocast) for each encoder size x batch size x {eager, compiled} x variant:
              images/s, achieved TFLOP/s (torch's FLOP counter on one step), peak memory
  end_to_end  the whole training loop (`sslmae.train.run.train`: real loader with the
              decode-once cache, batch augmentation on the GPU, validation) on UCM_mlc

Batches are semi-supervised: half labeled, half unlabeled (the paper's pairing).
Writes JSON lines to bench/results/gpu_<date>.jsonl with keys gpu, torch, model, encoder,
batch, compiled, what, img_per_s, tflops, peak_mem_gib, date. Runs on CPU with tiny sizes
(`--device cpu --models micro ...`) only to check the script itself.

    PYTHONPATH=. python bench/bench_gpu.py                       # the full GPU run
    PYTHONPATH=. python bench/bench_gpu.py --device cpu --models micro --batches 4 \\
        --img-size 32 --patch 4 --steps 2 --warmup 1 --no-e2e     # smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch
import torch._dynamo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sslmae.model.variants import VARIANTS  # noqa: E402


def gpu_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def make_batch(n: int, img: int, classes: int, device: str):
    x = torch.randn(n, 3, img, img, device=device)
    y = (torch.rand(n, classes, device=device) > 0.7).float()
    labeled = torch.zeros(n, dtype=torch.bool, device=device)
    labeled[n // 2:] = True  # B unlabeled + B labeled, as the paired sampler yields
    return x, y, labeled


def step_fn(losses, opt, batch, device: str):
    """losses: the model's training_losses, eager or compiled."""
    x, y, labeled = batch

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = losses(x, y, labeled)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def flops_per_step(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_step(size: str, variant: str, batch: int, compiled: bool, args) -> dict:
    device = args.device
    torch.manual_seed(0)
    model = VARIANTS[variant](17, backbone=size, img_size=args.img_size, patch_size=args.patch,
                              mask_patch_size=args.mask_patch, mask_ratio=args.mask_ratio).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    data = make_batch(batch, args.img_size, 17, device)
    flops = flops_per_step(step_fn(model.training_losses, opt, data, device))  # compiled kernels: the same arithmetic
    if compiled:
        torch._dynamo.reset()  # fresh caches: each config compiles its own graphs, none falls back to eager
    # what train.compile=auto does on a GPU (sslmae.train.module.SSLMAEModule)
    step = step_fn(torch.compile(model.training_losses) if compiled else model.training_losses, opt, data, device)
    for _ in range(args.warmup):
        step()
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {"what": "step", "model": size, "encoder": variant, "batch": batch, "compiled": compiled,
            "img_per_s": batch * args.steps / seconds, "tflops": flops * args.steps / seconds / 1e12,
            "gflop_per_img": flops / batch / 1e9, "peak_mem_gib": peak}


def bench_end_to_end(size: str, variant: str, args) -> dict:
    """The real training loop on UCM with the GPU defaults (train.compile=auto): images/s over
    the epochs after the first, whose time holds the cache build and compilation. Each epoch's
    time counts everything the loop does: loading, augmentation, steps, validation, checkpoints."""
    import tempfile

    import pandas as pd

    from sslmae.config import load_config
    from sslmae.split import split_dataset
    from sslmae.train.run import train

    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "split.csv"
        predefined = args.data / "split_seed42.csv"
        split_dataset(args.data, split, fraction=0.1, seed=0, predefined_file=predefined if predefined.is_file() else None)
        cfg = load_config(None, [
            f"data.dir={args.data}", f"data.split_file={split}", f"data.img_size={args.img_size}",
            f"data.cache_dir={tmp}/cache", f"data.num_workers={args.workers}", f"model.backbone={size}",
            f"model.variant={variant}", f"model.patch_size={args.patch}", f"model.mask_patch_size={args.mask_patch}",
            f"model.mask_ratio={args.mask_ratio}", f"train.epochs={args.e2e_epochs}",
            f"train.batch_size={args.e2e_batch // 2}", "train.progress_bar=false", f"train.out_dir={tmp}/run",
            "tracking.enabled=false", f"train.compile={'off' if args.e2e_eager else 'auto'}",
            f"train.checkpoint_every={args.e2e_epochs}", "train.deterministic=false"])
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = train(cfg)
        total = time.perf_counter() - t0
        hist = pd.read_csv(result.history)
    steady = hist.iloc[1:] if len(hist) > 1 else hist
    return {"what": "end_to_end", "model": size, "encoder": variant, "batch": args.e2e_batch,
            "compiled": not args.e2e_eager and args.device == "cuda",
            "img_per_s": float(steady["train_images"].sum() / steady["epoch_seconds"].sum()), "tflops": None,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else 0.0,
            "epochs": args.e2e_epochs, "first_epoch_seconds": float(hist["epoch_seconds"].iloc[0]),
            "train_seconds": round(total, 1), "workers": args.workers}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # in the order they run: the figures the targets name come first, in case the budget ends it
    p.add_argument("--models", nargs="*", default=["base", "small", "tiny"], help="none: end_to_end only")
    p.add_argument("--variants", nargs="+", default=["simmim", "visible_only"])
    p.add_argument("--batches", nargs="+", type=int, default=[256, 128, 64])
    p.add_argument("--compiled", nargs="+", default=["eager", "compiled"])
    p.add_argument("--compiled-batches", nargs="+", type=int, default=None,
                   help="batches also run compiled (default: the first of --batches; compiling costs ~1 min each)")
    p.add_argument("--budget-s", type=float, default=None, help="start no step measurement after this many seconds")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--mask-patch", type=int, default=32)
    p.add_argument("--mask-ratio", type=float, default=0.6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-e2e", action="store_true")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ucm_mlc")
    p.add_argument("--e2e-models", nargs="+", default=["small", "base"])
    p.add_argument("--e2e-batch", type=int, default=256)
    p.add_argument("--e2e-epochs", type=int, default=8)
    p.add_argument("--e2e-eager", action="store_true", help="train.compile=off (default: auto, compiled on GPU)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    date = dt.date.today().isoformat()
    common = {"gpu": gpu_name(args.device), "torch": torch.__version__, "date": date}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"gpu_{date}.jsonl"
    compiled_batches = args.compiled_batches or args.batches[:1]
    started = time.perf_counter()
    rows = []

    def emit(row: dict) -> None:  # appended as measured: a run cut short keeps what it has
        rows.append({**common, **row})
        print(json.dumps(rows[-1]), flush=True)
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rows[-1]) + "\n")

    for size in args.models:
        for variant in args.variants:
            for batch in args.batches:
                for mode in args.compiled:
                    if mode == "compiled" and batch not in compiled_batches:
                        continue
                    if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
                        print(f"step budget of {args.budget_s:.0f} s spent: skipping {size}/{variant}/{batch}/{mode}")
                        continue
                    try:
                        row = bench_step(size, variant, batch, mode == "compiled", args)
                    except torch.OutOfMemoryError:
                        row = {"what": "step", "model": size, "encoder": variant, "batch": batch,
                               "compiled": mode == "compiled", "img_per_s": None, "tflops": None,
                               "peak_mem_gib": None, "error": "out of memory"}
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                    emit(row)
    if not args.no_e2e:
        if not (args.data / "labels.csv").is_file():
            print(f"end_to_end skipped: {args.data} not found")
        else:
            for size in args.e2e_models:
                emit(bench_end_to_end(size, "simmim", args))
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
