"""Multispectral imagery end to end: 12-band 16-bit GeoTIFFs (the synthetic Sentinel-2-like set)
ingested at native radiometry (files and shards, with an unlabeled pool), trained on, evaluated and
predicted from GeoTIFFs, each part receiving the dataset's bands; and every bad raster one line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

pytest.importorskip("rasterio")

import rasterio  # noqa: E402

from sslmae.bands import Bands  # noqa: E402
from sslmae.cli.main import main  # noqa: E402
from sslmae.datasets.ingest import ingest  # noqa: E402
from sslmae.datasets.load import load_dataset  # noqa: E402
from sslmae.datasets.problems import DatasetError  # noqa: E402
from sslmae.datasets.synth import write_synthetic  # noqa: E402
from sslmae.datasets.synth_bands import BANDS, HIDDEN  # noqa: E402
from sslmae.loading.cache import open_cache  # noqa: E402
from sslmae.loading.pixels import pixels_for  # noqa: E402
from sslmae.split import split_dataset  # noqa: E402
from sslmae.train.model_file import load_model  # noqa: E402
from tests.conftest import tiny_overrides  # noqa: E402
from tests.support.datasets import quiet, save  # noqa: E402


def _tif(path, array, descriptions=None, nodata=None, **profile):
    c, h, w = array.shape
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype=array.dtype.name,
                       nodata=nodata, crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 0), **profile) as dst:
        dst.write(array)
        if descriptions:
            dst.descriptions = descriptions
    return path


@pytest.fixture(scope="module")
def ms_source(tmp_path_factory):
    """40 Sentinel-2-like tiles (12 bands, uint16, 32 px) with 8 more without labels."""
    return write_synthetic(tmp_path_factory.mktemp("ms") / "synth", n=40, size=32, seed=0, unlabeled=8, bands=12)


@pytest.fixture(scope="module")
def ms_dataset(ms_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("msds") / "ds"
    ingest(str(ms_source), out, unlabeled=[str(ms_source / "unlabeled")], log=quiet)
    split = out.parent / "split.csv"
    split_dataset(out, split, val=0.2, test=0.2, seed=0)
    return out, split


def test_the_synthetic_set_is_twelve_sixteen_bit_bands_with_two_infrared_labels(ms_source):
    with rasterio.open(ms_source / "images" / "scene0000.tif") as ds:
        assert (ds.count, ds.dtypes[0], ds.descriptions, ds.nodata) == (12, "uint16", BANDS, 0.0)
        assert ds.crs is not None and ds.read().min() >= 1
    header = (ms_source / "labels.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == list(HIDDEN)
    assert sorted(p.name for p in (ms_source / "unlabeled").iterdir())[0] == "pool0000.tif"


def test_a_geotiff_folder_ingests_its_bands_losslessly_and_records_them(ms_source, ms_dataset):
    out, _ = ms_dataset
    meta = pq.read_schema(out / "manifest.parquet").metadata
    bands = Bands.from_json(meta[b"sslmae.bands"].decode())
    assert bands == Bands(BANDS, "uint16", "all", 0.0)
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["bands"] == {"names": list(BANDS), "dtype": "uint16", "rule": "all", "nodata": 0.0, "source_bands": 12}
    assert report["pool"]["n_images"] == 8
    stored = np.load(out / "images" / "scene0003.npy")
    with rasterio.open(ms_source / "images" / "scene0003.tif") as ds:
        assert stored.dtype == np.uint16 and np.array_equal(stored, ds.read())  # no 8-bit round trip
    data = load_dataset(out)
    assert data.bands == bands and int((~data.known).sum()) == 8


def test_data_bands_picks_and_orders_bands_by_name_or_index(ms_source, tmp_path):
    ingest(str(ms_source), tmp_path / "a", bands=["B04", "B03", "B02", "B08"], log=quiet)
    ingest(str(ms_source), tmp_path / "b", bands=[4, 3, 2, 8], log=quiet)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    assert a.bands.names == ("B04", "B03", "B02", "B08") and a.bands.rule == '["B04", "B03", "B02", "B08"]'
    assert b.bands.names == a.bands.names
    with rasterio.open(ms_source / "images" / "scene0000.tif") as ds:
        full = ds.read()
    assert np.array_equal(np.load(tmp_path / "a" / "images" / "scene0000.npy"), full[[3, 2, 1, 7]])
    with pytest.raises(DatasetError, match=r"scene0000.tif: data.bands: 'B10' is not one of the source's bands \['B01'"):
        ingest(str(ms_source), tmp_path / "c", bands=["B10"], log=quiet)
    assert not (tmp_path / "c").exists()


def test_rgb_sources_are_read_as_before_and_all_on_a_png_names_the_file(tmp_path):
    from tests.support.datasets import labels_csv_dataset

    src = labels_csv_dataset(tmp_path / "rgb", n=6)
    ingest(str(src), tmp_path / "auto", log=quiet)
    assert b"sslmae.bands" not in pq.read_schema(tmp_path / "auto" / "manifest.parquet").metadata
    assert load_dataset(tmp_path / "auto").bands is None
    with pytest.raises(DatasetError, match=r"im0.png: data.bands=all reads GeoTIFF bands, but this image is PNG"):
        ingest(str(src), tmp_path / "all", bands="all", log=quiet)


def _one_of_each_defect(root, n_good=6):
    """A labels-csv folder of 12-band uint16 tiles, plus one tile per defect ingest must name."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    names = ["good%d" % i for i in range(n_good)]
    for name in names:
        _tif(images / f"{name}.tif", rng.integers(1, 4000, (12, 20, 20)).astype(np.uint16), nodata=0)
    defects = {
        "three_bands": (lambda p: _tif(p, rng.integers(1, 4000, (3, 20, 20)).astype(np.uint16)), "3 band(s), but the dataset's images have 12"),
        "float_tile": (lambda p: _tif(p, rng.random((12, 20, 20)).astype(np.float32)), "dtype float32, but the dataset's images are uint16"),
        "all_nodata": (lambda p: _tif(p, np.zeros((12, 20, 20), np.uint16), nodata=0), "every pixel is nodata (0)"),
        "renamed_jpeg": (lambda p: save(p, seed=3, format="JPEG"), "not a GeoTIFF: the file is JPEG"),
        "huge": (lambda p: _tif(p, rng.integers(1, 4000, (12, 40, 40)).astype(np.uint16)), "too large: 40x40 = 1600 pixels per band > max_pixels 1000"),
    }
    for name, (make, _) in defects.items():
        make(images / f"{name}.tif")
    rows = ["image,a,b"] + [f"{n},{i % 2},1" for i, n in enumerate(names + list(defects))]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root, {k: v for k, (_, v) in defects.items()}


def test_each_bad_raster_is_a_bad_item_naming_the_file_and_the_defect(tmp_path):
    src, defects = _one_of_each_defect(tmp_path / "src")
    res = ingest(str(src), tmp_path / "out", on_bad="skip", max_pixels=1000, log=quiet)
    assert res.n_images == 6
    skipped = {item["where"].rsplit("/", 1)[-1].removesuffix(".tif"): item["problem"] for item in res.report["skipped"]}
    assert set(skipped) == set(defects)
    for name, words in defects.items():
        assert words in skipped[name], name


def test_nan_in_a_float_raster_is_a_bad_item(tmp_path):
    images = tmp_path / "src" / "images"
    images.mkdir(parents=True)
    good = np.random.default_rng(0).random((4, 20, 20)).astype(np.float32)
    _tif(images / "a.tif", good)
    _tif(images / "b.tif", good * 2)
    bad = good.copy()
    bad[1, 3, 3] = np.nan
    _tif(images / "c.tif", bad)
    (tmp_path / "src" / "labels.csv").write_text("image,x,y\na,1,0\nb,0,1\nc,1,1\n")
    with pytest.raises(DatasetError, match=r"c.tif.*1 NaN/inf pixel values in a float raster"):
        ingest(str(tmp_path / "src"), tmp_path / "out", log=quiet)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_cache_keeps_the_source_dtype(ms_dataset, tmp_path):
    data = load_dataset(ms_dataset[0])
    arr = open_cache(tmp_path / "cache", data.paths, 16, root=data.root, pixels=pixels_for(data.bands))
    assert arr.shape == (48, 12, 16, 16) and arr.dtype == np.uint16
    full = open_cache(tmp_path / "cache", data.paths, 32, root=data.root, pixels=pixels_for(data.bands))
    assert np.array_equal(full[5], np.load(data.paths[5]))  # at the stored size: the stored values


@pytest.mark.slow
def test_twelve_bands_train_evaluate_and_predict_geotiffs(ms_source, ms_dataset, tmp_path):
    out, split = ms_dataset
    args = tiny_overrides(tmp_path, out, split)
    assert main(["train", *args, "train.epochs=1", "data.band_stats_images=10"]) == 0
    model, cfg, labels, _ = load_model(tmp_path / "train" / "model.pt")
    assert model.bands.stats.pixels == 10 * 32 * 32  # statistics of a sample of 10 training tiles (the cap)
    assert model.in_chans == 12 and model.bands.names == BANDS and model.bands.stats is not None
    assert model.encoder.patch_embed.proj.weight.shape[1] == 12
    stats = model.bands.stats
    assert all(lo < hi for lo, hi in zip(stats.p2, stats.p98)) and stats.nodata == (0,) * 12
    lo, hi = model.pixel_range
    assert len(lo) == 12 and len(model.pixel_mean) == 12
    assert main(["evaluate", *args, "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 <= metrics["macro_auprc"] <= 1
    # the report: the bands, their statistics, a false-colour composite and histograms of sample tiles
    assert main(["report", "--run", str(tmp_path / "train"), "--eval", str(tmp_path / "eval"), "--dataset", str(out),
                 "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    section = page[page.index('<section id="bands">'):]
    assert "B08 / B04 / B03 as red / green / blue" not in section  # figure text is pixels, not HTML
    assert section.count("data:image/png;base64,") == 2 and "<th>p98</th>" in section and "<td>B8A</td>" in section
    assert main(["report", "--run", str(tmp_path / "train"), "--out", str(tmp_path / "nodata.html")]) == 0
    assert "no dataset given (--dataset): sample tiles and histograms skipped" in (tmp_path / "nodata.html").read_text()
    # predict on the source GeoTIFFs and on the ingested dataset: the same scores for the same tiles
    assert main(["predict", "--model", str(tmp_path / "train" / "model.pt"), "--input", str(ms_source / "images"),
                 "--out", str(tmp_path / "tifs.csv")]) == 0
    assert main(["predict", "--model", str(tmp_path / "train" / "model.pt"), "--input", str(out),
                 "--out", str(tmp_path / "ds.csv")]) == 0
    import pandas as pd

    tifs = pd.read_csv(tmp_path / "tifs.csv").set_index("image")
    ds = pd.read_csv(tmp_path / "ds.csv").set_index("image")
    assert tifs["error"].isna().all()
    shared = [f"scene{i:04d}" for i in range(5)]
    assert np.allclose(tifs.loc[[f"{s}.tif" for s in shared], [f"prob_{n}" for n in labels]].to_numpy(),
                       ds.loc[shared, [f"prob_{n}" for n in labels]].to_numpy(), atol=1e-6)
    # an RGB dataset is not this model's data: one line naming both band lists
    from tests.support.datasets import labels_csv_dataset

    rgb = labels_csv_dataset(tmp_path / "rgb", n=4)
    ingest(str(rgb), tmp_path / "rgbds", log=quiet)
    with pytest.raises(ValueError, match=r"the images have bands \['red', 'green', 'blue'\] \(uint8\), the model was "
                                         r"trained on \['B01'"):
        from sslmae.predict import predict

        predict(str(tmp_path / "train" / "model.pt"), str(tmp_path / "rgbds"), tmp_path / "x.csv", log=quiet)


def test_twelve_bands_as_shards_read_the_same_pixels(ms_source, ms_dataset, tmp_path):
    ingest(str(ms_source), tmp_path / "shards", format="shards", unlabeled=[str(ms_source / "unlabeled")], log=quiet)
    shards, files = load_dataset(tmp_path / "shards"), load_dataset(ms_dataset[0])
    assert shards.bands == files.bands and shards.shards is not None
    from sslmae.loading.loaders import shard_reader

    reader = shard_reader(shards, str(tmp_path / "c"), 2**30)
    pixels = pixels_for(shards.bands)
    row = shards.ids.index("scene0007")
    assert np.array_equal(pixels.decode(reader.image(row), 32), np.load(files.paths[files.ids.index("scene0007")]))


def test_band_colour_ops_leave_rgb_only_ops_out():
    from sslmae.augment.batch import augment_batch
    from sslmae.augment.streams import AUTHORS_UNLABELED

    x = torch.rand(4, 12, 16, 16)
    labeled = torch.tensor([False] * 4)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, labeled, AUTHORS_UNLABELED, AUTHORS_UNLABELED, g, rgb=False)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    rgb_only = AUTHORS_UNLABELED.model_copy(update={"jitter": [0.0, 0.0, 0.0, 0.0], "crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0],
                                                     "hflip": 0.0, "vflip": 0.0, "blur_p": 0.0, "grayscale_p": 1.0})
    assert torch.allclose(augment_batch(x, labeled, rgb_only, rgb_only, g, rgb=False), x, atol=1e-5)  # no grayscale


# ------------------------------------------------------------------- BigEarthNet-S2: one file per band
GRID = {"B02": 24, "B03": 24, "B04": 24, "B08": 24, "B05": 12, "B06": 12, "B07": 12, "B8A": 12, "B11": 12,
        "B12": 12, "B01": 4, "B09": 4}  # 10 m, 20 m and 60 m bands of a 240 m patch


def _ben_patch(folder, patch, seed, skip=(), odd=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for band, side in GRID.items():
        if band in skip:
            continue
        side = odd if odd and band == "B05" else side
        _tif(folder / f"{patch}_{band}.tif", rng.integers(1, 9000, (1, side, side)).astype(np.uint16))


def test_bigearthnet_v1_reads_twelve_bands_on_the_10_m_grid(tmp_path):
    from rasterio.enums import Resampling

    src = tmp_path / "ben"
    for k in range(4):
        patch = f"S2A_MSIL2A_{k}"
        _ben_patch(src / patch, patch, k, skip=("B05",) if k == 2 else (), odd=10 if k == 3 else None)
        (src / patch / f"{patch}_labels_metadata.json").write_text(json.dumps({"labels": [["x"], ["y"], ["x", "y"], ["x"]][k]}))
    res = ingest(str(src), tmp_path / "out", on_bad="skip", log=quiet)
    assert res.n_images == 2 and res.report["bands"]["names"] == list(BANDS)  # auto: all 12
    skipped = {i["where"].split("/")[-1].split(",")[0]: i["problem"] for i in res.report["skipped"]}
    assert any("missing band file(s) B05" in p for p in skipped.values())
    assert any("no whole fraction of the 24x24 grid" in p and "'B05': '10x10'" in p for p in skipped.values())
    data = load_dataset(tmp_path / "out")
    arr = np.load(data.paths[0])
    assert arr.shape == (12, 24, 24) and arr.dtype == np.uint16
    with rasterio.open(src / "S2A_MSIL2A_0" / "S2A_MSIL2A_0_B11.tif") as ds:  # 20 m -> 10 m, bilinear
        assert np.array_equal(arr[BANDS.index("B11")], ds.read(1, out_shape=(24, 24), resampling=Resampling.bilinear))
    with rasterio.open(src / "S2A_MSIL2A_0" / "S2A_MSIL2A_0_B04.tif") as ds:  # 10 m as it is
        assert np.array_equal(arr[BANDS.index("B04")], ds.read(1))


def test_bigearthnet_v2_metadata_parquet_with_its_split(tmp_path):
    import pandas as pd

    src = tmp_path / "reben"
    patches = [f"S2B_MSIL2A_T{k}" for k in range(4)]
    for k, patch in enumerate(patches):
        _ben_patch(src / "S2B_TILE" / patch, patch, k)
    pd.DataFrame({"patch_id": patches, "labels": [["Urban"], ["Forest"], ["Urban", "Forest"], ["Forest"]],
                  "split": ["train", "validation", "test", "train"]}).to_parquet(src / "metadata.parquet")
    res = ingest(str(src), tmp_path / "out", bands=["B04", "B03", "B02", "B08"], log=quiet)
    assert res.layout == "bigearthnet" and res.label_names == ["Forest", "Urban"]
    data = load_dataset(tmp_path / "out")
    assert data.bands.names == ("B04", "B03", "B02", "B08") and list(data.predefined) == ["train", "val", "test", "train"]
    assert np.load(data.paths[2]).shape == (4, 24, 24)


def test_eurosat_ms_class_folders_of_13_band_tiles_read_as_multiclass(tmp_path):
    src = tmp_path / "eurosat"
    names = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
    rng = np.random.default_rng(0)
    for cls in ("Forest", "River"):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            _tif(src / cls / f"{cls}_{i}.tif", rng.integers(1, 4000, (13, 16, 16)).astype(np.uint16))
    res = ingest(str(src), tmp_path / "out", log=quiet)
    data = load_dataset(tmp_path / "out")
    assert res.layout == "class-folders" and data.task == "mcc" and data.bands.count == 13
    assert data.bands.names == tuple(f"B{i}" for i in range(1, 14))  # no descriptions: 1-based names
    ingest(str(src), tmp_path / "ssl4eo", bands=[1, 2, 3, 4, 5, 6, 7, 8, 13, 9, 10, 11, 12], log=quiet)
    assert load_dataset(tmp_path / "ssl4eo").bands.names[8] == "B13"  # EuroSAT's B8A, moved to SSL4EO's place
    assert names[12] == "B8A"


# ------------------------------------------------------------------- TorchGeo's Sentinel-2 weights by name
@pytest.fixture
def torchgeo_weights(tmp_path, monkeypatch):
    """ViTSmall16_Weights.SENTINEL2_ALL_MOCO as a file of its shapes (timm's vit_small_patch16_224,
    13 input bands) behind an HTTP server on 127.0.0.1, the name pointing there."""
    import http.server
    import threading
    from dataclasses import replace
    from functools import partial

    from sslmae.model import published
    from sslmae.model.backbone import build_backbone

    www = tmp_path / "www"
    www.mkdir()
    torch.manual_seed(0)
    state = build_backbone("small", 224, 16, in_chans=13).state_dict()
    torch.save(state, www / "moco.pth")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler,
                                                                       directory=str(www)))
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = "ViTSmall16_Weights.SENTINEL2_ALL_MOCO"
    monkeypatch.setitem(published.TORCHGEO, name, replace(published.TORCHGEO[name],
                                                          url=f"http://127.0.0.1:{server.server_address[1]}/moco.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield f"torchgeo:{name}", state["patch_embed.proj.weight"]
    server.shutdown()
    server.server_close()


def _model(source, names, adapt=False):
    from sslmae.model.simmim import SimMIMSSLMAE

    bands = Bands(tuple(names), "uint16", "all", None, None)
    return SimMIMSSLMAE(num_classes=3, backbone="small", img_size=32, patch_size=16, mask_patch_size=16,
                        pretrained=source, bands=bands, adapt_bands=adapt)


SSL4EO_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def test_torchgeo_sentinel2_weights_load_by_name_with_their_bands_and_scale(torchgeo_weights):
    source, kernels = torchgeo_weights
    model = _model(source, SSL4EO_ORDER)  # spelt B01 / B8A: the same bands as TorchGeo's B1 / B8a
    assert torch.equal(model.encoder.patch_embed.proj.weight, kernels)
    assert model.bands.scale == 10000.0 and model.pixel_range == ((0.0,) * 13, (10000.0,) * 13)
    assert model.pixel_mean == (0.0,) * 13 and model.pixel_std == (1.0,) * 13  # DN / 10000, as TorchGeo's transforms


def test_weights_of_other_bands_are_one_line_unless_adapted(torchgeo_weights):
    source, kernels = torchgeo_weights
    with pytest.raises(ValueError, match=r"the weights' bands \['B1', 'B2'.*'B10', 'B11', 'B12'\] are not the data's "
                                         r"\['B01'.*'B12'\]; choose those bands \(data.bands\) or set model.adapt_bands=true"):
        _model(source, BANDS)  # BigEarthNet's 12: no B10
    model = _model(source, BANDS + ("VV",), adapt=True)
    got = model.encoder.patch_embed.proj.weight
    for i, name in enumerate(BANDS):
        assert torch.equal(got[:, i], kernels[:, SSL4EO_ORDER.index(name)]), name
    assert torch.allclose(got[:, 12], kernels.mean(dim=1))  # a band the weights lack: the mean kernel


def test_an_rgb_run_has_no_bands_section(tiny_run, synth_dir, tmp_path):
    from sslmae.report.build import build_report

    page = build_report(tmp_path / "r.html", run_dir=tiny_run, dataset=synth_dir).read_text()
    assert 'id="bands"' not in page


@pytest.mark.slow
def test_a_bigearthnet_folder_as_shards_trains_on_its_twelve_bands(tmp_path):
    src = tmp_path / "ben"
    for k in range(16):
        patch = f"S2A_MSIL2A_{k:02d}"
        _ben_patch(src / patch, patch, k)
        labels = [["Urban"], ["Forest"], ["Urban", "Forest"], ["Water"]][k % 4]
        (src / patch / f"{patch}_labels_metadata.json").write_text(json.dumps({"labels": labels}))
    ingest(str(src), tmp_path / "ds", format="shards", bands="all", log=quiet)
    split_dataset(tmp_path / "ds", tmp_path / "split.csv", fraction=0.5, val=0.25, test=0.25, seed=0)
    args = [a for a in tiny_overrides(tmp_path, tmp_path / "ds", tmp_path / "split.csv") if "img_size" not in a]
    assert main(["train", *args, "data.img_size=24", "train.epochs=1"]) == 0
    model = load_model(tmp_path / "train" / "model.pt")[0]
    assert model.bands.names == BANDS and model.bands.stats.pixels > 0 and model.in_chans == 12
