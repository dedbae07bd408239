"""A distributed training job on Kubernetes, driven from its launcher pod (the KFP task), for
both trainers: Training Operator v1 `PyTorchJob` and Trainer v2 `TrainJob`.

- The name is fixed per pipeline run and trial (`job_name`), so a retried launcher finds the job
  of the try before: a running or finished one is adopted (its ownerReference moved to the new
  launcher pod), a failed one is deleted and created anew (it resumes from the checkpoints on
  the shared claim).
- The job is owned by the launcher pod (`launcher_owner`: POD_NAME and POD_UID from the
  downward API), so Kubernetes deletes it with the pod if the launcher disappears unseen.
- It is deleted when it succeeds (after the launcher copied its result), fails or times out,
  and when the launcher gets SIGTERM (a terminated run, an evicted pod).
- The log of its rank-0 pod is streamed into the launcher's log; when it fails, the last
  lines of every failed pod are printed too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

MANAGED_BY = "sslmae"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Kind:
    """What differs between the trainers' job resources."""

    group: str
    version: str
    plural: str
    kind: str
    outcome: Callable[[dict | None], tuple[str, str]]  # status -> ('running'|'succeeded'|'failed', message)
    pod_selector: Callable[[str], str]  # job name -> label selector of its pods
    is_primary: Callable[[dict], bool]  # pod labels -> whether it is rank 0
    container: str  # the training container's name


class JobInterrupted(BaseException):
    """SIGTERM while waiting on the job (a BaseException, so `except Exception` passes it by)."""


def conditions_outcome(status: dict | None, ok: str, failed: str = "Failed") -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a job's conditions; the newest true
    condition decides."""
    conditions = (status or {}).get("conditions") or []
    for cond in reversed(conditions):
        if cond.get("status") != "True":
            continue
        if cond.get("type") == ok:
            return "succeeded", cond.get("message", "")
        if cond.get("type") == failed:
            return "failed", f"{cond.get('reason', 'Failed')}: {cond.get('message', '')}"
    return "running", conditions[-1].get("message", "") if conditions else "created"


def job_name(run_id: str, trial: str, prefix: str = "sslmae") -> str:
    """A DNS-1035 name (lower case, <= 63 characters, a letter first), fixed per run and trial."""
    slug = re.sub(r"[^a-z0-9]+", "-", trial.lower()).strip("-")[:30] or "trial"
    tag = hashlib.sha256(f"{run_id}/{trial}".encode()).hexdigest()[:10]
    return f"{prefix}-{slug}-{tag}"


def launcher_owner() -> dict | None:
    """The ownerReference to this pod (POD_NAME, POD_UID from the downward API); None outside
    a pod, or without those variables."""
    name, uid = os.environ.get("POD_NAME"), os.environ.get("POD_UID")
    if not (name and uid):
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid, "controller": False,
            "blockOwnerDeletion": False}


def launcher_namespace(explicit: str = "") -> str:
    """The namespace for the job: `explicit`, else this pod's own (an ownerReference cannot
    cross namespaces), else 'default'."""
    if explicit:
        return explicit
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SA_NAMESPACE) as fh:
            return fh.read().strip() or "default"
    except OSError:
        return "default"


def cluster_apis():
    """(CustomObjectsApi, CoreV1Api) from the pod's service account, else ~/.kube/config."""
    from kubernetes import client, config  # optional: only multi-node launchers need it

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


def _status_code(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def get_custom(custom, group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
    """A custom resource, or None when the API server answers 404."""
    try:
        return custom.get_namespaced_custom_object(group, version, namespace, plural, name)
    except Exception as exc:
        if _status_code(exc) == 404:
            return None
        raise


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises JobInterrupted where the main thread is (no-op elsewhere)."""
    def handler(signum, frame):
        raise JobInterrupted()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Job:
    """One job resource: create or adopt, wait, delete."""

    def __init__(self, manifest: dict, kind: Kind, custom, core=None, log=print):
        self.manifest, self.kind, self.custom, self.core, self.log = manifest, kind, custom, core, log
        meta = manifest["metadata"]
        self.name, self.namespace = meta["name"], meta["namespace"]
        self.what = f"{kind.kind} {self.namespace}/{self.name}"
        self._args = (kind.group, kind.version, self.namespace, kind.plural)
        self._followed: set = set()
        self._threads: list[threading.Thread] = []

    def get(self) -> dict | None:
        return get_custom(self.custom, *self._args, self.name)

    def create_or_adopt(self, gone_timeout_s: float = 300, poll_s: float = 2.0) -> str:
        """'created', 'adopted' (running or finished, from an earlier launcher) or 'replaced'."""
        try:
            self._create()
            self.log(f"{self.what} created")
            return "created"
        except Exception as exc:
            if _status_code(exc) != 409:
                raise
        existing = self.get() or {}
        labels = (existing.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_MANAGED) != MANAGED_BY:
            raise ValueError(f"{self.what} exists and was not made by sslmae; delete it or use another run")
        state, message = self.kind.outcome(existing.get("status"))
        if state != "failed":
            owners = self.manifest["metadata"].get("ownerReferences")
            if owners:
                self.custom.patch_namespaced_custom_object(*self._args, self.name,
                                                           {"metadata": {"ownerReferences": owners}})
            self.log(f"{self.what} exists from an earlier try ({state}): adopted")
            return "adopted"
        self.log(f"{self.what} from an earlier try failed ({message}): replacing it")
        self.delete()
        deadline = time.monotonic() + gone_timeout_s
        while self.get() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.what}: still being deleted after {gone_timeout_s:.0f} s")
            time.sleep(poll_s)
        self._create()
        self.log(f"{self.what} created anew")
        return "replaced"

    def _create(self) -> None:
        """Create with strict field validation (an unknown field is an error, not dropped)."""
        try:
            self.custom.create_namespaced_custom_object(*self._args, self.manifest, field_validation="Strict")
        except Exception as exc:
            hint = {403: "the pipeline's service account may not create it (docs/kubeflow.md: permissions)",
                    404: f"no {self.kind.kind} resource here: is its operator installed ({self.kind.group})?",
                    422: "the API server refused the manifest"}.get(_status_code(exc))
            if hint is None:
                raise
            reason = " ".join(str(getattr(exc, "reason", "")).split())
            raise RuntimeError(f"{self.what}: cannot create it ({_status_code(exc)} {reason}): {hint}") from exc

    def delete(self) -> None:
        """Delete the job and, in the background, its pods; absent already is fine."""
        try:
            self.custom.delete_namespaced_custom_object(*self._args, self.name, propagation_policy="Background")
            self.log(f"{self.what} deleted")
        except Exception as exc:
            if _status_code(exc) != 404:
                raise

    # ------------------------------------------------------------------ pod logs

    def _pods(self) -> list:
        if self.core is None:
            return []
        try:
            return list(self.core.list_namespaced_pod(self.namespace,
                                                      label_selector=self.kind.pod_selector(self.name)).items)
        except Exception as exc:  # logs are a convenience: never fail the job over them
            self.log(f"{self.what}: cannot list its pods ({exc})")
            return []

    def _follow(self, pod_name: str) -> None:
        try:
            resp = self.core.read_namespaced_pod_log(pod_name, self.namespace, container=self.kind.container,
                                                     follow=True, _preload_content=False)
            pending = b""
            for chunk in resp.stream():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.log(f"[{pod_name}] {line.decode(errors='replace')}")
            if pending:
                self.log(f"[{pod_name}] {pending.decode(errors='replace')}")
            resp.release_conn()
        except Exception as exc:
            self.log(f"{self.what}: log of {pod_name} interrupted ({exc})")

    def follow_primary(self) -> None:
        """Start streaming the rank-0 pod's log (once per container start)."""
        for pod in self._pods():
            labels = pod.metadata.labels or {}
            if not self.kind.is_primary(labels) or pod.status.phase not in ("Running", "Succeeded", "Failed"):
                continue
            restarts = sum(c.restart_count or 0 for c in (pod.status.container_statuses or []))
            key = (pod.metadata.uid, restarts)
            if key in self._followed:
                continue
            self._followed.add(key)
            thread = threading.Thread(target=self._follow, args=(pod.metadata.name,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def tail_failed(self, lines: int = 50) -> None:
        for pod in self._pods():
            if pod.status.phase != "Failed" and not any(
                    (c.state and c.state.terminated and c.state.terminated.exit_code)
                    for c in (pod.status.container_statuses or [])):
                continue
            try:
                text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace,
                                                         container=self.kind.container, tail_lines=lines)
            except Exception as exc:
                self.log(f"{self.what}: no log of {pod.metadata.name} ({exc})")
                continue
            for line in str(text).splitlines():
                self.log(f"[{pod.metadata.name}] {line}")

    # ------------------------------------------------------------------ the whole life

    def run(self, timeout_s: float, poll_s: float = 15.0) -> str:
        """Create (or adopt) the job, wait for it, delete it; the final message. RuntimeError
        when it fails, TimeoutError after `timeout_s`, JobInterrupted on SIGTERM: each after
        deleting the job."""
        ours = False  # a job of that name that sslmae did not make is never deleted
        with sigterm_raises():
            try:
                self.create_or_adopt()
                ours = True
                return self._wait(timeout_s, poll_s)
            except BaseException as exc:
                if isinstance(exc, JobInterrupted):
                    self.log(f"{self.what}: the launcher got SIGTERM")
                raise
            finally:
                if ours:
                    self.delete()
                for thread in self._threads:
                    thread.join(timeout=5)

    def _wait(self, timeout_s: float, poll_s: float) -> str:
        deadline, last = time.monotonic() + timeout_s, None
        while True:
            obj = self.get()
            if obj is None:
                raise RuntimeError(f"{self.what} disappeared (deleted by someone else?)")
            state, message = self.kind.outcome(obj.get("status"))
            if (state, message) != last:
                self.log(f"{self.what}: {state} {message}".rstrip())
                last = (state, message)
            self.follow_primary()
            if state == "succeeded":
                return message
            if state == "failed":
                self.tail_failed()
                raise RuntimeError(f"{self.what} failed: {message}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.what} still running after {timeout_s:.0f} s: deleted")
            time.sleep(poll_s)
