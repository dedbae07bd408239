"""MLflow runs: where they go, what each records, and how grid trials nest.

The tracking URI is `tracking.uri` from params, else $MLFLOW_TRACKING_URI, else
`sqlite:///mlflow.db` in the working folder (artifacts then go to ./mlruns). Each train,
grid and evaluate call is one run; grid trials are made children of their grid's parent
run by the `mlflow.parentRunId` tag, so trials can run in separate processes (DVC foreach,
Kubeflow ParallelFor) and still nest.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import platform
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from importlib.metadata import version
from typing import Iterator

import torch

import sslmae
from sslmae.config import flatten
from sslmae.config.schema import TrackingConfig
from sslmae.redact import redact
from sslmae.tracking.lineage import lineage_tags, run_label

DEFAULT_URI = "sqlite:///mlflow.db"
PROBE_TIMEOUT_S = 5.0  # MLflow's own client retries an unreachable server for minutes


def mlflow_module():
    """mlflow, imported on first use: it is optional (the `pipeline` extra) and takes
    seconds to import, and training with tracking off must not need it."""
    import mlflow

    return mlflow


def client(tracking: TrackingConfig):
    """An MlflowClient on the run's tracking URI."""
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(store_uri(tracking))
    return mlflow.MlflowClient()


class TrackingError(ValueError):
    """The tracking server cannot be used; the message names its URI."""


def tracking_uri(tracking: TrackingConfig) -> str:
    return tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


_READY: set[str] = set()  # sqlite stores this process has seen created


def ready_store(uri: str) -> str:
    """`uri`, its sqlite store created first when it is new. MLflow creates a store's tables on first
    use, so processes starting at once on a new file (a DVC queue, parallel trials) race and all but
    one fail ("table ... already exists"); here the first creates them while holding an exclusive lock
    on the file, and the others wait, then find them. Other stores (a server, files) are as they are."""
    if not uri.startswith("sqlite:") or uri in _READY:
        return uri
    from sqlalchemy.engine import make_url  # MLflow's own dependency, as it parses the URI

    database = make_url(uri).database
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:  # sqlite takes an empty file for a new database
            fcntl.flock(fh, fcntl.LOCK_EX)  # flock, not sqlite's own fcntl locks: the two do not interact
            store = mlflow_module().MlflowClient(tracking_uri=uri, registry_uri=uri)
            store.search_experiments(max_results=1)  # the tracking tables, then the registry's
            store.search_registered_models(max_results=1)
    _READY.add(uri)
    return uri


def store_uri(tracking: TrackingConfig) -> str:
    """The tracking URI to point MLflow at: `tracking_uri`, its store made ready (`ready_store`)."""
    return ready_store(tracking_uri(tracking))


def check_reachable(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """For an http(s) tracking URI, ask the server's /health endpoint once, within a few
    seconds, before any work; TrackingError naming the URI if it does not answer.
    Local stores (sqlite, file) need no probe."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(_health_request(uri), timeout=timeout_s) as reply:
            if reply.status < 500:
                return
            reason = f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # an answer (e.g. 401 behind a proxy): the server is there
            return
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise TrackingError(f"MLflow tracking server {redact(uri)} does not answer ({reason}); start it, set "
                        "tracking.uri or MLFLOW_TRACKING_URI to one that does, or tracking.enabled=false")


def _health_request(uri: str) -> urllib.request.Request:
    """GET <uri>/health; user info in the URI (basic auth, as MLflow's client sends it) becomes
    an Authorization header, which urllib does not derive from the URL itself."""
    parts = urllib.parse.urlsplit(uri.rstrip("/"))
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=parts.path + "/health")))
    if parts.username is not None:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    return request


def check_tracking(tracking: TrackingConfig) -> None:
    """check_reachable for a config whose tracking is on."""
    if tracking.enabled:
        check_reachable(tracking_uri(tracking))


def flat_params(params: dict) -> dict[str, str]:
    """A config as a dict -> MLflow params: {'model.mask_ratio': '0.6', 'train.betas': '[0.9, 0.999]'}."""
    return {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in flatten(params).items()}


def environment() -> dict[str, str]:
    """Versions and device, as tags."""
    env = {"sslmae.version": sslmae.__version__, "python": platform.python_version(), "torch": torch.__version__,
           # read from the installed metadata: importing lightning costs a command seconds it does not use
           "lightning": version("lightning"), "timm": version("timm"), "host.platform": platform.platform()}
    if torch.cuda.is_available():
        env["device"] = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    else:
        env["device"] = f"cpu ({os.cpu_count()} cores)"
    return env


@contextlib.contextmanager
def mlflow_run(tracking: TrackingConfig, name: str, kind: str, tags: dict | None = None) -> Iterator[object | None]:
    """Start an MLflow run (None when tracking is disabled). `kind`: grid | evaluate | register | promote."""
    if not tracking.enabled:
        yield None
        return
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(store_uri(tracking))
    mlflow.set_experiment(tracking.experiment)
    all_tags = {"sslmae.kind": kind, **environment(), **lineage_tags(), **(tags or {})}
    with mlflow.start_run(run_name=f"{name} @ {run_label()}", tags=all_tags) as run:
        yield run


@contextlib.contextmanager
def existing_run(tracking: TrackingConfig, run_id: str) -> Iterator[object]:
    """Continue the MLflow run `run_id` (fluent API active inside)."""
    mlflow = mlflow_module()
    mlflow.set_tracking_uri(store_uri(tracking))
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def nest(tracking: TrackingConfig, parent_run_id: str, child_run_ids: list[str]) -> None:
    """Make runs children of a parent (MLflow's UI nests by this tag)."""
    mlflow_client = client(tracking)
    for rid in child_run_ids:
        mlflow_client.set_tag(rid, "mlflow.parentRunId", parent_run_id)


def log_files(tracking: TrackingConfig, run_id: str, files: dict[str, Path], artifact_path: str | None = None) -> None:
    """Log the files that exist as artifacts of run `run_id`."""
    mlflow_client = client(tracking)
    for path in files.values():
        if Path(path).is_file():
            mlflow_client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_plots(tracking: TrackingConfig, run_id: str, plots: dict[str, bytes], artifact_path: str = "plots") -> None:
    """Log PNG bytes as artifacts of run `run_id`: {'learning_curves.png': b'...'}."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in plots.items():
            (Path(tmp) / name).write_bytes(data)
        client(tracking).log_artifacts(run_id, tmp, artifact_path=artifact_path)


def log_metrics(tracking: TrackingConfig, run_id: str, metrics: dict, step: int | None = None) -> None:
    """Log the finite numbers of `metrics` to run `run_id` (NaN: a metric undefined on this data)."""
    now = int(time.time() * 1000)
    batch = [mlflow_module().entities.Metric(k, float(v), now, step or 0) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
    if batch:
        client(tracking).log_batch(run_id, metrics=batch)
