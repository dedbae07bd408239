"""The GPU benchmark script runs end to end (on CPU, tiny sizes) and writes its JSON lines."""

import json
import subprocess
import sys

from tests.conftest import REPO

KEYS = {"gpu", "torch", "model", "encoder", "batch", "compiled", "what", "img_per_s", "tflops", "peak_mem_gib", "date"}


def test_bench_gpu_smoke_on_cpu(tmp_path):
    cmd = [sys.executable, str(REPO / "bench" / "bench_gpu.py"), "--device", "cpu", "--models", "micro",
           "--batches", "4", "--img-size", "32", "--patch", "4", "--mask-patch", "8", "--steps", "2", "--warmup", "1",
           "--compiled", "eager", "--no-e2e", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = tmp_path.glob("gpu_*.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and {r["encoder"] for r in rows} == {"simmim", "visible_only"}
    for r in rows:
        assert KEYS <= set(r) and r["img_per_s"] > 0 and r["tflops"] > 0
