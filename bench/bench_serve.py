"""Serving throughput and latency on this machine: `sslmae serve` (KServe, with and without dynamic
batching) and `mlflow models serve` of the same model file, against the offline `sslmae predict`.

    python bench/bench_serve.py [--images ../shared/datasets/ucm_mlc] [--models mini,deit_s224]
                                [--servers sslmae,sslmae-nobatch,mlflow] [--concurrency 1,8,32]
                                [--requests N] [--seconds 15] [--n-images N] [--out bench/results]

Models, randomly initialised (throughput does not depend on the weights), 17 labels (UCM_mlc):

  mini       what `make run` trains: params.yaml's model section (backbone `mini`, patch 8) at
             data.img_size 64.
  deit_s224  DeiT-S (ViT-S/16, backbone `small`: timm's deit_small_patch16_224) at 224 px, patch 16.

Servers, each a subprocess in its own session on a free port, stopped by its pid (SIGTERM, wait):

  sslmae          `sslmae serve --model FILE` (dynamic batching: --max-batch 32, --max-wait-ms 5),
                  POST /v2/models/sslmae/infer, one BYTES input of one base64 image.
  sslmae-nobatch  the same with --no-batching: each request is its own forward pass.
  mlflow          `mlflow models serve` of the model file logged as an MLflow Model
                  (sslmae.tracking.mlflow_model, into a throw-away sqlite store, downloaded to a
                  folder): POST /invocations {"dataframe_split": ...}; MLflow's default of one
                  uvicorn worker, which runs each request's predict in a thread.

Load: a closed loop. `c` client threads in this process, each with its own keep-alive
http.client.HTTPConnection, send one-image requests back to back (the next as soon as the answer
is read); the request bodies (the images' bytes as stored on disk, base64 in JSON) are encoded
once before the clock starts. A warm-up of max(2c, 8) requests first, not counted, also sets the
request count: enough for about --seconds at the warm-up's rate (at least 2c, a multiple of c),
unless --requests fixes it. Per request the latency from send to the answer read; per
configuration images/s (requests over the wall time of the measured run) and p50/p95/p99 ms.
CLIENT AND SERVER SHARE THE MACHINE'S CORES (2 on the machine of the committed figures): the
figures include the client's own CPU time, as a load generator on the same node would.

Offline ceiling: `sslmae.predict.predict` over the same images with the same model file (batches
of 64, one process: decode + forward, the model file's loading included), timed after one
warm-up call on a few images.

Summary per model: batched / unbatched images/s at concurrency 32 (target >= 3), batched at c=32
as a fraction of predict's images/s (target >= 0.70), p99 / p50 of batched sslmae serve at c=8
(target <= 2); each with met: true/false.

Writes bench/results/serve_<YYYY-MM-DD>.jsonl atomically (one JSON line per configuration, per
model's predict and per model's summary) and prints a table. Exits 0 with "skipped: ..." when
the image folder is missing.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from sslmae.atomic import atomic_file  # noqa: E402

UCM = REPO.parent / "shared" / "datasets" / "ucm_mlc"
MODELS = {  # name -> config overrides (on params.yaml's defaults)
    "mini": [],
    "deit_s224": ["model.backbone=small", "model.patch_size=16", "model.mask_patch_size=16", "data.img_size=224"],
}
SERVERS = ("sslmae", "sslmae-nobatch", "mlflow")
N_LABELS = 17
EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
MAX_BATCH, MAX_WAIT_MS = 32, 5.0
TARGETS = {"batching_ratio_c32": 3.0, "fraction_of_predict_c32": 0.70, "p99_over_p50_c8": 2.0}


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores"


def free_port() -> int:
    from sslmae.kubeflow.services import free_port as free

    return free()


# ---------------------------------------------------------------- models and images

def image_files(images: Path, n: int | None) -> list[Path]:
    folder = images / "images" if (images / "images").is_dir() else images
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS)
    return files[:n] if n else files


def label_names(images: Path) -> list[str]:
    csv = images / "labels.csv"
    if csv.is_file():
        names = csv.read_text().splitlines()[0].split(",")[1:]
        if len(names) == N_LABELS:
            return names
    return [f"label{i}" for i in range(N_LABELS)]


def build_model_file(name: str, labels: list[str], work: Path) -> Path:
    import torch

    from sslmae.config import load_config
    from sslmae.model.variants import build_model
    from sslmae.train.model_file import save_model

    torch.manual_seed(0)
    cfg = load_config(None, MODELS[name])
    net = build_model(cfg.model, cfg.loss, cfg.data.task, cfg.data.img_size, len(labels))
    return save_model(work / f"{name}.pt", net, cfg, labels)


def mlflow_model_dir(model_file: Path, work: Path, name: str, labels: list[str]) -> Path:
    """The model file of model `name` as an MLflow Model (sslmae's own logging), downloaded to a local folder."""
    import mlflow

    from sslmae.config import load_config
    from sslmae.config.schema import TrackingConfig
    from sslmae.tracking.mlflow_model import log_mlflow_model
    from sslmae.tracking.models import download_bar_only_on_a_terminal

    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("bench-serve") or None
    exp_id = exp.experiment_id if exp else client.create_experiment("bench-serve",
                                                                     artifact_location=(work / "artifacts").as_uri())
    run = client.create_run(exp_id)
    model_id = log_mlflow_model(TrackingConfig(enabled=True, uri=uri), run.info.run_id, model_file, labels,
                                load_config(None, MODELS[name]).data.img_size)
    client.set_terminated(run.info.run_id)
    mlflow.set_tracking_uri(uri)
    with download_bar_only_on_a_terminal():
        return Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}",
                                                        dst_path=str(work / f"ml-{model_file.stem}")))


# ---------------------------------------------------------------- servers

def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class Server:
    """A server subprocess in its own session: started, waited on until ready, stopped by pid."""

    def __init__(self, kind: str, model_file: Path, mlflow_dir: Path | None, log: Path):
        self.kind, self.port = kind, free_port()
        if kind == "mlflow":
            exe = str(Path(sys.executable).parent / "mlflow")
            cmd = [exe, "models", "serve", "-m", str(mlflow_dir), "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port)]
            self.ready_path, self.path = "/ping", "/invocations"
        else:
            cmd = [sys.executable, "-m", "sslmae.cli", "serve", "--model", str(model_file), "--port", str(self.port),
                   "--max-batch", str(MAX_BATCH), "--max-wait-ms", str(MAX_WAIT_MS)]
            cmd += ["--no-batching"] if kind == "sslmae-nobatch" else []
            self.ready_path, self.path = "/v2/health/ready", "/v2/models/sslmae/infer"
        self.log = log
        env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false", PYTHONPATH=str(REPO))
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while _status(f"http://127.0.0.1:{self.port}{self.ready_path}") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not become ready: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def body(self, b64: str) -> bytes:
        if self.kind == "mlflow":
            return json.dumps({"dataframe_split": {"columns": ["image"], "data": [[b64]]}}).encode()
        return json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}).encode()


# ---------------------------------------------------------------- the load generator

def closed_loop(port: int, path: str, bodies: list[bytes], n: int, c: int, start_at: int = 0) -> tuple[float, np.ndarray]:
    """n one-image requests from c threads, each back to back on its own keep-alive connection:
    (wall seconds, latencies in ms). Request i carries bodies[(start_at + i) % len(bodies)]."""
    lock, nxt = threading.Lock(), [0]
    lat = np.zeros(n)
    errors: list[str] = []
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    barrier = threading.Barrier(c + 1)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.connect()
        barrier.wait()
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= n or errors:
                    return
                t = time.perf_counter()
                conn.request("POST", path, bodies[(start_at + i) % len(bodies)], headers)
                resp = conn.getresponse()
                data = resp.read()
                lat[i] = (time.perf_counter() - t) * 1000
                if resp.status != 200:
                    errors.append(f"HTTP {resp.status}: {data[:300]!r}")
        except Exception as exc:  # noqa: BLE001 - reported below, the run fails
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(c)]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return wall, lat


def measure(server: Server, b64s: list[str], c: int, requests: int | None, seconds: float) -> dict:
    bodies = [server.body(b) for b in b64s]
    warm = max(2 * c, 8)
    wall, _ = closed_loop(server.port, server.path, bodies, warm, c)
    if requests is None:
        rate = warm / wall
        requests = max(2 * c, round(rate * seconds / c) * c)
    wall, lat = closed_loop(server.port, server.path, bodies, requests, c, start_at=warm)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"img_per_s": round(requests / wall, 2), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1), "requests": requests, "seconds": round(wall, 2)}


def offline_predict(model_file: Path, files: list[Path], work: Path) -> dict:
    """`sslmae predict` over the images (a folder of links to them), after a warm-up on 8 of them."""
    from sslmae.predict import predict

    def folder(name: str, chosen: list[Path]) -> Path:
        d = work / name
        d.mkdir(exist_ok=True)
        for f in chosen:
            if not (d / f.name).exists():
                (d / f.name).symlink_to(f.resolve())
        return d

    def quiet(message: str) -> None:
        pass

    predict(str(model_file), str(folder("warm", files[:8])), work / "warm.csv", log=quiet)
    every = folder("all", files)
    t = time.perf_counter()
    predict(str(model_file), str(every), work / f"{model_file.stem}.csv", log=quiet)
    secs = time.perf_counter() - t
    return {"images": len(files), "seconds": round(secs, 2), "img_per_s": round(len(files) / secs, 2)}


# ---------------------------------------------------------------- the run

def summary(model: str, rows: list[dict]) -> dict | None:
    def get(what, server, c):
        return next((r for r in rows if r["what"] == what and r["model"] == model
                     and r.get("_server") == server and r.get("concurrency", c) == c), None)

    b32, u32, b8 = get("serve", "sslmae", 32), get("serve", "sslmae-nobatch", 32), get("serve", "sslmae", 8)
    pred = next((r for r in rows if r["what"] == "predict" and r["model"] == model), None)
    out = {"what": "summary", "model": model}
    if b32 and u32:
        v = b32["img_per_s"] / u32["img_per_s"]
        out.update(batching_ratio_c32=round(v, 2), batching_ratio_c32_met=v >= TARGETS["batching_ratio_c32"])
    if b32 and pred:
        v = b32["img_per_s"] / pred["img_per_s"]
        out.update(fraction_of_predict_c32=round(v, 3), fraction_of_predict_c32_met=v >= TARGETS["fraction_of_predict_c32"])
    if b8:
        v = b8["p99_ms"] / b8["p50_ms"]
        out.update(p99_over_p50_c8=round(v, 2), p99_over_p50_c8_met=v <= TARGETS["p99_over_p50_c8"])
    out["targets"] = TARGETS
    return out if len(out) > 3 else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=UCM, help="a folder of images (or one with images/ inside)")
    p.add_argument("--n-images", type=int, default=None, help="only the first N images (sorted)")
    p.add_argument("--models", default="mini,deit_s224")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests", type=int, default=None, help="measured requests per configuration "
                   "(default: about --seconds at the warm-up's rate)")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--no-predict", dest="predict", action="store_false", help="skip the offline predict ceiling")
    p.add_argument("--date", default=dt.date.today().isoformat())
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)

    if not args.images.is_dir() or not image_files(args.images, 1):
        print(f"skipped: no image folder at {args.images}")
        return 0
    models, servers = args.models.split(","), args.servers.split(",")
    conc = [int(c) for c in args.concurrency.split(",")]
    unknown = [m for m in models if m not in MODELS] + [s for s in servers if s not in SERVERS]
    if unknown:
        p.error(f"unknown model or server {unknown}; known: {sorted(MODELS)}, {list(SERVERS)}")
    files = image_files(args.images, args.n_images)
    b64s = [base64.b64encode(f.read_bytes()).decode() for f in files]  # as stored on disk
    labels = label_names(args.images)
    mach = machine()
    print(f"{len(files)} images from {args.images}; {mach}; client threads share the cores with the server")

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        for model in models:
            model_file = build_model_file(model, labels, work)
            ml_dir = mlflow_model_dir(model_file, work, model, labels) if "mlflow" in servers else None
            if args.predict:
                res = offline_predict(model_file, files, work)
                rows.append({"what": "predict", "model": model, **res, "machine": mach, "date": args.date})
                print(f"{model:10s} predict {res['img_per_s']:8.1f} img/s ({res['images']} images, {res['seconds']} s)",
                      flush=True)
            for kind in servers:
                with Server(kind, model_file, ml_dir, work / f"{model}-{kind}.log") as server:
                    for c in conc:
                        res = measure(server, b64s, c, args.requests, args.seconds)
                        row = {"what": "serve", "server": "mlflow" if kind == "mlflow" else "sslmae", "model": model,
                               "batching": kind == "sslmae", "concurrency": c, **res, "machine": mach,
                               "date": args.date, "_server": kind}
                        if kind == "mlflow":
                            row["workers"] = 1
                        else:
                            row.update(max_batch=MAX_BATCH, max_wait_ms=MAX_WAIT_MS)
                        rows.append(row)
                        print(f"{model:10s} {kind:15s} c={c:<3d} {res['img_per_s']:8.1f} img/s  p50 {res['p50_ms']:8.1f}  "
                              f"p95 {res['p95_ms']:8.1f}  p99 {res['p99_ms']:8.1f} ms  ({res['requests']} requests, "
                              f"{res['seconds']} s)", flush=True)
            s = summary(model, rows)
            if s:
                rows.append({**s, "machine": mach, "date": args.date})

    lines = [{k: v for k, v in r.items() if k != "_server"} for r in rows]
    print_table(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"serve_{args.date}.jsonl"
    with atomic_file(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in lines))
    print(f"wrote {path}")
    return 0


def print_table(lines: list[dict]) -> None:
    print("\n| model | server | batching | c | img/s | p50 ms | p95 ms | p99 ms | requests |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in lines:
        if r["what"] == "serve":
            print(f"| {r['model']} | {r['server']} | {'yes' if r['batching'] else 'no'} | {r['concurrency']} | "
                  f"{r['img_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['requests']} |")
        elif r["what"] == "predict":
            print(f"| {r['model']} | sslmae predict (offline) | batches of 64 | - | {r['img_per_s']:.1f} | | | | "
                  f"{r['images']} images |")
    for r in lines:
        if r["what"] == "summary":
            print(f"{r['model']}: " + ", ".join(f"{k} {r[k]} ({'met' if r[k + '_met'] else 'NOT met'})"
                                                for k in TARGETS if k in r))


if __name__ == "__main__":
    sys.exit(main())
