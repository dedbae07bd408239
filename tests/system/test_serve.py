"""`sslmae serve` as a real process on 127.0.0.1 (KServe's model server): both REST protocols give
what `sslmae predict` gives for the same image; concurrent requests share forward passes; every
kind of bad request is a 4xx naming the problem and the next good request succeeds; memory stays
flat over 10,000 requests; SIGTERM finishes the requests in flight and exits 0."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from sslmae.config import load_config
from sslmae.model.simmim import SimMIMSSLMAE
from sslmae.predict import predict
from sslmae.train.model_file import save_model
from tests.support.model_server import b64, get, model_server, png, post, rss_mib, v2_body

LABELS = ["field", "forest", "road", "water", "urban"]
THRESHOLDS = [0.5, 0.49, 0.51, 0.5, 0.5]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             "data.img_size=32"])
    model = SimMIMSSLMAE(num_classes=len(LABELS), backbone="micro", img_size=32, patch_size=4, mask_patch_size=8)
    return save_model(folder / "model.pt", model, cfg, LABELS, thresholds=THRESHOLDS)


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with model_server(model_file, log, "--max-wait-ms", "20") as (url, proc):
        yield url, proc


def test_v1_and_v2_answer_what_sslmae_predict_answers(server, model_file, tmp_path):
    url, _ = server
    images = [png(40, seed) for seed in range(3)]
    (tmp_path / "in").mkdir()
    for i, data in enumerate(images):
        (tmp_path / "in" / f"{i}.png").write_bytes(data)
    offline = predict(str(model_file), str(tmp_path / "in"), tmp_path / "p.csv", log=lambda m: None)
    expected = offline[[f"prob_{n}" for n in LABELS]].to_numpy()

    status, v2 = post(f"{url}/v2/models/sslmae/infer", v2_body(*images))
    assert status == 200, v2
    probs, labels = v2["outputs"]
    assert probs["name"] == "probabilities" and probs["shape"] == [3, len(LABELS)]
    assert probs["parameters"]["labels"] == ";".join(LABELS)
    np.testing.assert_allclose(np.reshape(probs["data"], (3, -1)), expected, atol=1e-5)
    assert labels["data"] == [p if isinstance(p, str) else "" for p in offline["predicted"].fillna("")]

    status, v1 = post(f"{url}/v1/models/sslmae:predict", {"instances": [{"image": {"b64": b64(d)}} for d in images]})
    assert status == 200, v1
    got = np.array([[p["probabilities"][n] for n in LABELS] for p in v1["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [";".join(p["labels"]) for p in v1["predictions"]] == list(offline["predicted"].fillna(""))


def test_health_readiness_and_metrics(server):
    url, _ = server
    assert get(f"{url}/v2/health/live")[0] == 200
    assert get(f"{url}/v2/health/ready")[0] == 200
    status, body = get(f"{url}/v2/models/sslmae/ready")
    assert status == 200 and '"ready":true' in body.replace(" ", "")
    status, metrics = get(f"{url}/metrics")
    assert status == 200 and "request_predict_seconds" in metrics and "sslmae_batch_images" in metrics


def _batches(url: str) -> tuple[float, float]:
    text = get(f"{url}/metrics")[1]
    count = float(re.search(r"^sslmae_batch_images_count (\S+)", text, re.M).group(1))
    total = float(re.search(r"^sslmae_batch_images_sum (\S+)", text, re.M).group(1))
    return count, total


def test_concurrent_requests_are_scored_together(server):
    url, _ = server
    before = _batches(url)
    image = png(40, 7)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: post(f"{url}/v2/models/sslmae/infer", v2_body(image)), range(64)))
    assert all(status == 200 for status, _ in answers)
    first = answers[0][1]["outputs"][0]["data"]
    assert all(np.allclose(a["outputs"][0]["data"], first, atol=1e-5) for _, a in answers)  # batching changes nothing
    count, total = (a - b for a, b in zip(_batches(url), before))
    assert total == 64 and count < 64 / 2, f"{count} forward passes for 64 concurrent one-image requests"


def _bomb() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (20_000, 20_000)).save(buf, format="PNG")  # ~400 MB of pixels in ~400 KB
    return buf.getvalue()


BAD = {
    "not base64": (lambda: v2_body() | {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                    "data": ["%%% not base64 %%%"]}]}, 400, "not base64"),
    "not an image": (lambda: v2_body(b"plain text, not an image"), 400, "not an image"),
    "truncated jpeg": (lambda: v2_body(_jpeg()[:300]), 400, "truncated"),
    "1x1 image": (lambda: v2_body(png(1)), 400, "1 x 1"),
    "decompression bomb": (lambda: v2_body(_bomb()), 400, "bomb"),
    "wrong input name": (lambda: {"inputs": [{"name": "img", "datatype": "BYTES", "shape": [1],
                                              "data": [b64(png())]}]}, 400, "no input named 'image'"),
    "wrong datatype": (lambda: {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
                       400, "datatype must be BYTES"),
    "no images": (lambda: {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [0], "data": []}]},
                  400, "no images"),
}


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_request_is_a_4xx_naming_it_and_the_server_goes_on(server, case):
    url, _ = server
    body, code, words = BAD[case]
    status, answer = post(f"{url}/v2/models/sslmae/infer", body())
    assert status == code and words in answer["error"], (status, answer)
    assert post(f"{url}/v2/models/sslmae/infer", v2_body(png()))[0] == 200


@pytest.mark.parametrize("case", ["wrong content type", "empty body", "50 MB body", "unknown model", "v1 shape",
                                  "broken json"])
def test_a_malformed_http_request_is_a_4xx_and_the_server_goes_on(server, case):
    url, _ = server
    infer = f"{url}/v2/models/sslmae/infer"
    status, answer = {
        "wrong content type": lambda: post(infer, b"abc", content_type="text/plain"),
        "empty body": lambda: post(infer, b""),
        "50 MB body": lambda: post(infer, b"{" + b" " * (50 * 2**20) + b"}"),
        "unknown model": lambda: post(f"{url}/v2/models/other/infer", v2_body(png())),
        "v1 shape": lambda: post(f"{url}/v1/models/sslmae:predict", {"images": []}),
        "broken json": lambda: post(infer, b'{"inputs": ['),
    }[case]()
    assert 400 <= status < 500, (status, answer)
    assert {"error", "detail"} & set(answer), answer  # KServe's and FastAPI's JSON error shapes
    expected = {"wrong content type": 415, "empty body": 400, "50 MB body": 413, "unknown model": 404}.get(case)
    assert expected is None or status == expected, (status, answer)
    assert post(infer, v2_body(png()))[0] == 200


@pytest.mark.slow
def test_memory_stays_flat_over_10000_requests(server):
    url, proc = server
    good, bad = json.dumps(v2_body(png(40, 1))).encode(), json.dumps(v2_body(b"junk")).encode()
    host, port = url.removeprefix("http://").split(":")

    def client(ids) -> set[int]:  # one keep-alive connection per client, as a load balancer keeps them
        conn, seen = http.client.HTTPConnection(host, int(port), timeout=60), set()
        for i in ids:
            conn.request("POST", "/v2/models/sslmae/infer", bad if i % 10 == 0 else good,
                         {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            seen.add(resp.status)
        conn.close()
        return seen

    def load(n: int) -> set[int]:
        with ThreadPoolExecutor(8) as pool:
            return set().union(*pool.map(client, [range(k, n, 8) for k in range(8)]))

    assert load(1000) == {200, 400}  # warm: allocator pools, caches
    start = rss_mib(proc.pid)
    assert load(9000) == {200, 400}
    grown = rss_mib(proc.pid) - start
    assert grown < 40, f"RSS grew {grown:.0f} MiB over 9,000 requests after a 1,000-request warm-up"


def test_sigterm_finishes_the_requests_in_flight_and_exits_0(model_file, tmp_path):
    with model_server(model_file, tmp_path / "serve.log", "--max-wait-ms", "300") as (url, proc):
        answers, started = [], threading.Barrier(9)

        def one():
            started.wait()
            answers.append(post(f"{url}/v2/models/sslmae/infer", v2_body(png(40, 3)))[0])

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        started.wait()
        threading.Event().wait(0.1)  # the requests are in the batcher's 300 ms window
        os.kill(proc.pid, signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert proc.wait(timeout=60) == 0
    assert answers == [200] * 8


def test_a_registry_version_is_served(tmp_path, mlflow_server, model_file):
    import mlflow

    from sslmae.config.schema import TrackingConfig
    from sslmae.tracking.mlflow_model import log_mlflow_model

    mlflow.set_tracking_uri(mlflow_server)
    client = mlflow.MlflowClient()
    exp = client.create_experiment(f"serve-{tmp_path.name}")
    run = client.create_run(exp)
    model_id = log_mlflow_model(TrackingConfig(enabled=True, uri=mlflow_server), run.info.run_id, model_file,
                                LABELS, 32)
    name = f"serve-{tmp_path.name}"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"models:/{model_id}", run.info.run_id, model_id=model_id)
    client.set_registered_model_alias(name, "champion", version.version)
    with model_server(f"models:/{name}@champion", tmp_path / "serve.log",
                      env={"MLFLOW_TRACKING_URI": mlflow_server}) as (url, _):
        status, answer = post(f"{url}/v1/models/sslmae:predict", {"instances": [{"image": {"b64": b64(png())}}]})
    assert status == 200 and set(answer["predictions"][0]["probabilities"]) == set(LABELS)
    assert isinstance(pd.DataFrame(answer["predictions"]), pd.DataFrame)
