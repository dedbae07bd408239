"""bench/bench_serve.py runs end to end on a few tiny synthetic images against a real `sslmae serve`
and writes its JSON lines."""

import importlib.util
import json

import pytest

from sslmae.datasets.synth import write_synthetic
from tests.conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "bench" / "bench_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~30 s: starts two model servers (KServe import) and runs predict
def test_bench_serve_runs_and_writes_json_lines(tmp_path, capsys):
    images = write_synthetic(tmp_path / "ds", n=4, size=48, seed=0)
    bench = load_script()
    assert bench.main(["--images", str(images), "--models", "mini", "--servers", "sslmae,sslmae-nobatch",
                       "--concurrency", "1,8,32", "--requests", "32", "--date", "2000-01-01",
                       "--out", str(tmp_path / "out")]) == 0
    lines = [json.loads(ln) for ln in (tmp_path / "out" / "serve_2000-01-01.jsonl").read_text().splitlines()]
    serve = [r for r in lines if r["what"] == "serve"]
    assert [(r["batching"], r["concurrency"]) for r in serve] == [(b, c) for b in (True, False) for c in (1, 8, 32)]
    for r in serve:
        assert r["server"] == "sslmae" and r["model"] == "mini" and r["requests"] == 32
        assert r["img_per_s"] > 0 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert r["machine"] and r["date"] == "2000-01-01"
    (pred,) = [r for r in lines if r["what"] == "predict"]
    assert pred["images"] == 4 and pred["img_per_s"] > 0
    (summary,) = [r for r in lines if r["what"] == "summary"]
    for key in ("batching_ratio_c32", "fraction_of_predict_c32", "p99_over_p50_c8"):
        assert summary[key] > 0 and isinstance(summary[key + "_met"], bool)
    assert "wrote" in capsys.readouterr().out


def test_bench_serve_skips_without_images(tmp_path, capsys):
    assert load_script().main(["--images", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out and not list(tmp_path.glob("*.jsonl"))
