"""`sslmae serve` of a model trained on 12 bands: GeoTIFFs (base64 in v1 and v2; raw bytes through the
MLflow pyfunc) and v2 tensors [N, C, S, S] of UINT16 or FP32 score as `sslmae predict` scores the same
GeoTIFFs; a wrong band count, dtype, shape or format is a 400 with one line, and the server goes on."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rasterio")

import rasterio  # noqa: E402
from affine import Affine  # noqa: E402

from sslmae.bands import Bands, BandStats  # noqa: E402
from sslmae.config import load_config  # noqa: E402
from sslmae.datasets.synth_bands import BANDS, render_bands, write_tile  # noqa: E402
from sslmae.model.simmim import SimMIMSSLMAE  # noqa: E402
from sslmae.predict import predict  # noqa: E402
from sslmae.train.model_file import save_model  # noqa: E402
from tests.support.model_server import b64, model_server, png, post, v2_body  # noqa: E402

LABELS = ["a", "b", "c"]
SIZE = 32


@pytest.fixture(scope="module")
def band_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served-bands")
    stats = BandStats(mean=(1500.0,) * 12, std=(600.0,) * 12, p2=(200.0,) * 12, p98=(4000.0,) * 12,
                      nodata=(0,) * 12, pixels=1000)
    bands = Bands(BANDS, "uint16", "all", 0.0, stats)
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             f"data.img_size={SIZE}"])
    model = SimMIMSSLMAE(num_classes=3, backbone="micro", img_size=SIZE, patch_size=4, mask_patch_size=8, bands=bands)
    path = save_model(folder / "model.pt", model, cfg, LABELS)
    tiles = folder / "tiles"
    tiles.mkdir()
    cubes = []
    for i in range(3):
        dn, _ = render_bands(0, i, SIZE)
        write_tile(tiles / f"t{i}.tif", dn, i)
        cubes.append(dn)
    return path, tiles, np.stack(cubes)


@pytest.fixture(scope="module")
def server(band_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-bands-log") / "serve.log"
    with model_server(band_model[0], log) as (url, proc):
        yield url


def _tif_bytes(array: np.ndarray, names=None) -> bytes:
    c, h, w = array.shape
    buf = io.BytesIO()
    with rasterio.io.MemoryFile() as mem:
        with mem.open(driver="GTiff", width=w, height=h, count=c, dtype=array.dtype.name, crs="EPSG:32633",
                      transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
            dst.write(array)
            if names:
                dst.descriptions = names
        buf.write(mem.read())
    return buf.getvalue()


def _expected(band_model, tmp_path) -> np.ndarray:
    path, tiles, _ = band_model
    offline = predict(str(path), str(tiles), tmp_path / "p.csv", log=lambda m: None)
    assert offline["error"].isna().all()
    return offline[[f"prob_{n}" for n in LABELS]].to_numpy()


def test_geotiffs_and_tensors_score_as_predict_does(server, band_model, tmp_path):
    path, tiles, cubes = band_model
    expected = _expected(band_model, tmp_path)
    files = [(tiles / f"t{i}.tif").read_bytes() for i in range(3)]
    status, v2 = post(f"{server}/v2/models/sslmae/infer", v2_body(*files))
    assert status == 200, v2
    np.testing.assert_allclose(np.reshape(v2["outputs"][0]["data"], (3, -1)), expected, atol=1e-5)
    status, v1 = post(f"{server}/v1/models/sslmae:predict", {"instances": [{"image": {"b64": b64(d)}} for d in files]})
    assert status == 200, v1
    np.testing.assert_allclose([[p["probabilities"][n] for n in LABELS] for p in v1["predictions"]], expected, atol=1e-5)
    for datatype, values in (("UINT16", cubes.astype(int)), ("FP32", cubes.astype(float))):
        body = {"inputs": [{"name": "image", "datatype": datatype, "shape": list(cubes.shape),
                            "data": values.reshape(-1).tolist()}]}
        status, out = post(f"{server}/v2/models/sslmae/infer", body)
        assert status == 200, (datatype, out)
        np.testing.assert_allclose(np.reshape(out["outputs"][0]["data"], (3, -1)), expected, atol=1e-5)


def _tensor(shape, datatype="UINT16", values=None):
    data = values if values is not None else [100] * int(np.prod(shape))
    return {"inputs": [{"name": "image", "datatype": datatype, "shape": list(shape), "data": data}]}


@pytest.mark.parametrize("body, words", [
    (v2_body(_tif_bytes(np.ones((4, SIZE, SIZE), np.uint16))), "the model needs ['B01'"),
    (v2_body(_tif_bytes(np.ones((12, SIZE, SIZE), np.float32), list(BANDS))), "dtype float32, the model was trained on uint16"),
    (v2_body(png(SIZE)), "not a GeoTIFF: the file is PNG"),
    (v2_body(b"not an image at all"), "not a raster rasterio can read"),
    (_tensor((1, 3, SIZE, SIZE)), "shape [1, 3, 32, 32], the model takes [N, 12, 32, 32]"),
    (_tensor((1, 12, 16, 16)), "shape [1, 12, 16, 16], the model takes [N, 12, 32, 32]"),
    (_tensor((1, 12, SIZE, SIZE), "INT64"), "datatype INT64; a tensor of bands is one of"),
    (_tensor((1, 12, SIZE, SIZE), "FP32", [0.5] * 12 * SIZE * SIZE), "values that uint16 (the model's bands) cannot hold"),
])
def test_a_wrong_image_is_a_400_naming_it_and_the_server_goes_on(server, band_model, body, words):
    status, out = post(f"{server}/v2/models/sslmae/infer", body)
    assert status == 400, out
    assert words in out["error"] and "\n" not in out["error"], out
    status, _ = post(f"{server}/v2/models/sslmae/infer", v2_body((band_model[1] / "t0.tif").read_bytes()))
    assert status == 200


def test_the_pyfunc_takes_raw_geotiff_bytes(band_model, tmp_path):
    from sslmae.serving.pyfunc import SSLMAEPyfunc

    class Context:
        artifacts = {"model_file": str(band_model[0])}

    pyfunc = SSLMAEPyfunc()
    pyfunc.load_context(Context())
    raw = [(band_model[1] / f"t{i}.tif").read_bytes() for i in range(3)]
    out = pyfunc.predict(None, pd.DataFrame({"image": raw}))
    np.testing.assert_allclose(out[[f"prob_{n}" for n in LABELS]].to_numpy(), _expected(band_model, tmp_path), atol=1e-5)
