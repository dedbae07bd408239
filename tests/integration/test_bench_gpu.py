"""The GPU benchmark script runs end to end (on CPU, tiny sizes) and writes its JSON lines,
as on the lent GPU machine: without mlflow, kfp, dvc or boto3 installed."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

# imports of these packages fail in the child, as on the lent machine where they are absent
WITHOUT_SERVICES = ("import runpy, sys; sys.modules.update(dict.fromkeys(['mlflow', 'kfp', 'dvc', 'boto3'])); "
                    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def run_bench(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", WITHOUT_SERVICES, str(REPO / "bench" / script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

KEYS = {"gpu", "torch", "model", "encoder", "batch", "compiled", "what", "img_per_s", "tflops", "peak_mem_gib", "date"}


@pytest.mark.slow  # trains in a subprocess
def test_bench_gpu_smoke_on_cpu(tmp_path, synth_dir):
    proc = run_bench("bench_gpu.py", "--device", "cpu", "--models", "micro", "--batches", "4", "--img-size", "32",
                     "--patch", "4", "--mask-patch", "8", "--steps", "2", "--warmup", "1", "--compiled", "eager",
                     "--data", str(synth_dir), "--e2e-models", "micro", "--e2e-batch", "16", "--e2e-epochs", "2",
                     "--workers", "0", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = tmp_path.glob("gpu_*.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    steps = [r for r in rows if r["what"] == "step"]
    assert len(steps) == 2 and {r["encoder"] for r in steps} == {"simmim", "visible_only"}
    for r in steps:
        assert KEYS <= set(r) and r["img_per_s"] > 0 and r["tflops"] > 0
    (e2e,) = [r for r in rows if r["what"] == "end_to_end"]  # the real train() loop on a dataset folder
    assert KEYS <= set(e2e) and e2e["img_per_s"] > 0 and e2e["epochs"] == 2
