"""A real `sslmae serve` process for tests: started in its own session on a free port, ready when
KServe's /v2/health/ready answers, stopped by its pid (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from sslmae.kubeflow.services import free_port


def png(size: int = 40, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def v2_body(*images: bytes) -> dict:
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)], "data": [b64(i) for i in images]}]}


def post(url: str, body, content_type: str = "application/json", timeout: float = 60) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def model_server(model: str | Path, log_file: Path, *args: str, env: dict | None = None,
                 ready_s: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL on 127.0.0.1, the process) of `sslmae serve --model model *args`."""
    port = free_port()
    cmd = [sys.executable, "-m", "sslmae.cli", "serve", "--model", str(model), "--port", str(port), *args]
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, **(env or {})))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while get_ready(url) != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sslmae serve did not become ready: {log_file.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def get_ready(url: str) -> int | None:
    try:
        return get(f"{url}/v2/health/ready", timeout=2)[0]
    except OSError:
        return None
