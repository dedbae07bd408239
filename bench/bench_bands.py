"""Multispectral storage and reading: what a 12-band tile costs against an RGB one, and which library
reads GeoTIFFs.

On N synthetic Sentinel-2-like tiles (`sslmae.datasets.synth_bands`, 12 uint16 bands, deflate GeoTIFF,
SIZE px) and the same N scenes as RGB PNGs (`sslmae.datasets.synth`):

  readers   rasterio (GDAL) and tifffile reading every GeoTIFF whole: tiles/s, and what each gives
            (band descriptions, nodata, a band resampled onto another grid)
  storage   bytes per stored tile: the ingested .npy (C, H, W) uint16 as sslmae stores it, the same
            bytes compressed with zstd (level 3) and deflate (zlib level 6), each with its decode
            time; the RGB PNG sslmae stores for the RGB scene
  loading   sslmae's per-item reading (no decode cache) of each ingested dataset: images/s at
            img_size; the decode cache's build time and bytes
  model     training steps (forward + backward of the joint loss, model.backbone at img_size, batches
            of B labeled + B unlabeled) at 12 channels and at 3: images/s

    PYTHONPATH=. python bench/bench_bands.py [--n 1000] [--size 120] [--img-size 64] [--steps 20]

Writes bench/results/bands_<date>.json and prints each figure as it is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def readers(files: list[Path]) -> dict:
    import rasterio
    import tifffile

    t = time.perf_counter()
    for f in files:
        with rasterio.open(f) as ds:
            a = ds.read()
    rio = time.perf_counter() - t
    t = time.perf_counter()
    for f in files:
        b = tifffile.imread(f)
    tif = time.perf_counter() - t
    b = np.moveaxis(b, -1, 0) if b.shape != a.shape else b  # tifffile: (H, W, C) of a pixel-interleaved file
    assert np.array_equal(a, b), "the two readers disagree"
    with rasterio.open(files[0]) as ds:
        rio_desc, rio_nodata = ds.descriptions, ds.nodata
    with tifffile.TiffFile(files[0]) as tf:
        tags = tf.pages[0].tags
        tif_nodata = tags["GDAL_NODATA"].value if "GDAL_NODATA" in tags else None
        tif_meta = tags["GDAL_METADATA"].value if "GDAL_METADATA" in tags else ""
    return {"rasterio_tiles_per_s": _rate(len(files), rio), "tifffile_tiles_per_s": _rate(len(files), tif),
            "rasterio": {"version": rasterio.__version__, "gdal": rasterio.__gdal_version__,
                         "descriptions": list(rio_desc), "nodata": rio_nodata, "resampled_read": True},
            "tifffile": {"version": tifffile.__version__, "descriptions_in": "GDAL_METADATA XML (parsed by hand)",
                         "descriptions_found": "B01" in str(tif_meta), "nodata": tif_nodata, "resampled_read": False}}


def storage(ingested: Path, rgb: Path, n: int) -> dict:
    import pyarrow as pa

    arrays = sorted((ingested / "images").glob("scene*.npy"))[:n]
    raw = [p.read_bytes() for p in arrays]
    codec = pa.Codec("zstd", compression_level=3)
    zstd = [codec.compress(b, asbytes=True) for b in raw]
    deflate = [zlib.compress(b, 6) for b in raw]
    t = time.perf_counter()
    for b, z in zip(raw, zstd):
        codec.decompress(z, decompressed_size=len(b), asbytes=True)
    zstd_s = time.perf_counter() - t
    t = time.perf_counter()
    for z in deflate:
        zlib.decompress(z)
    deflate_s = time.perf_counter() - t
    pngs = sorted((rgb / "images").glob("scene*.png"))[:n]
    mean = lambda xs: round(float(np.mean([len(x) for x in xs])))  # noqa: E731
    return {"npy_bytes_per_tile": mean(raw), "zstd3_bytes_per_tile": mean(zstd), "deflate6_bytes_per_tile": mean(deflate),
            "zstd3_decode_us_per_tile": round(zstd_s / len(raw) * 1e6, 1),
            "deflate6_decode_us_per_tile": round(deflate_s / len(raw) * 1e6, 1),
            "rgb_png_bytes_per_tile": round(float(np.mean([p.stat().st_size for p in pngs])))}


def loading(dataset: Path, img_size: int, cache_dir: Path) -> dict:
    from sslmae.datasets.load import load_dataset
    from sslmae.loading.cache import open_cache
    from sslmae.loading.images import ImageTableDataset
    from sslmae.loading.pixels import pixels_for

    data = load_dataset(dataset)
    pixels = pixels_for(data.bands)
    ds = ImageTableDataset(data.paths, data.labels, np.ones(len(data.ids), bool), img_size, pixels=pixels)
    t = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    per_item = time.perf_counter() - t
    t = time.perf_counter()
    cache = open_cache(cache_dir, data.paths, img_size, root=data.root, pixels=pixels, log=lambda m: None)
    build = time.perf_counter() - t
    return {"per_item_img_per_s": _rate(len(ds), per_item), "cache_build_s": round(build, 2),
            "cache_bytes": int(cache.nbytes)}


def model_speed(channels: int, img_size: int, batch: int, steps: int, backbone: str) -> dict:
    import torch

    from sslmae.bands import Bands, BandStats
    from sslmae.model.simmim import SimMIMSSLMAE

    torch.manual_seed(0)
    bands = None
    if channels != 3:
        stats = BandStats((1.0,) * channels, (1.0,) * channels, (0.0,) * channels, (2.0,) * channels,
                          (0,) * channels, 1)
        bands = Bands(tuple(f"B{i + 1}" for i in range(channels)), "uint16", "all", None, stats)
    model = SimMIMSSLMAE(num_classes=10, backbone=backbone, img_size=img_size, patch_size=8, mask_patch_size=16,
                         bands=bands)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(2 * batch, channels, img_size, img_size)
    y = (torch.rand(2 * batch, 10) < 0.3).float()
    labeled = torch.arange(2 * batch) < batch
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = model.training_losses(x, y, labeled, raw=x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    per_step = float(np.median(times[2:]))
    return {"channels": channels, "img_per_s": _rate(2 * batch, per_step), "step_s": round(per_step, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=120, help="tile side (BigEarthNet's: 120)")
    p.add_argument("--img-size", type=int, default=64, help="the model's input side (params' default: 64)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--backbone", default="mini")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)

    from bench.machine import cpu_model
    from sslmae.datasets.ingest import ingest
    from sslmae.datasets.synth import write_synthetic

    report = {"date": dt.date.today().isoformat(), "machine": f"cpu: {cpu_model()} x{os.cpu_count()}",
              "tiles": args.n, "tile_px": args.size, "img_size": args.img_size}
    with tempfile.TemporaryDirectory(prefix="sslmae-bench-bands-") as tmp:
        work = Path(tmp)
        src12 = write_synthetic(work / "s12", n=args.n, size=args.size, bands=12)
        src3 = write_synthetic(work / "s3", n=args.n, size=args.size, bands=3)
        report["readers"] = readers(sorted((src12 / "images").glob("*.tif")))
        print(json.dumps(report["readers"]), flush=True)
        for name, src in (("bands12", src12), ("rgb", src3)):
            t = time.perf_counter()
            ingest(str(src), work / f"ds_{name}", log=lambda m: None)
            report[f"ingest_{name}_tiles_per_s"] = _rate(args.n, time.perf_counter() - t)
            report[f"loading_{name}"] = loading(work / f"ds_{name}", args.img_size, work / f"cache_{name}")
            print(json.dumps({k: v for k, v in report.items() if name in k}), flush=True)
        report["storage"] = storage(work / "ds_bands12", src3, args.n)
        print(json.dumps(report["storage"]), flush=True)
    report["model"] = [model_speed(c, args.img_size, args.batch, args.steps, args.backbone) for c in (12, 3)]
    report["model_setting"] = {"backbone": args.backbone, "batch": f"{args.batch} labeled + {args.batch} unlabeled",
                               "steps": args.steps, "patch_size": 8, "threads": __import__("torch").get_num_threads()}
    print(json.dumps(report["model"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bands_{report['date']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
