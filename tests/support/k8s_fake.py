"""Stand-ins for the two Kubernetes APIs a multi-node launcher uses, recording every call:
CustomObjectsApi (the job resource: create, get, patch, delete; 409 and 404 as the API server
answers them, with the real kubernetes.client ApiException) and CoreV1Api (the job's pods and
their logs, as kubernetes.client models). They check what sslmae asks of the API; what a real
operator and scheduler then do is only visible on a cluster."""

from __future__ import annotations

import copy
from typing import Callable

from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateTerminated,
    V1ContainerStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodList,
    V1PodStatus,
)
from kubernetes.client.exceptions import ApiException


def condition(kind: str, reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason or kind, "message": message}


RUNNING = {"conditions": [condition("Created", message="created"), condition("Running", message="running")]}


def finished(kind: str, message: str = "", reason: str = "") -> dict:
    return {"conditions": RUNNING["conditions"] + [condition(kind, reason, message)]}


class FakeCustomObjects:
    """Jobs by (namespace, plural, name). `on_get(job, n)` may set job['status'] at the n-th get."""

    def __init__(self, on_get: Callable[[dict, int], None] | None = None, on_create: Callable[[dict], None] | None = None):
        self.objects: dict = {}
        self.calls: list = []
        self.on_get = on_get or (lambda job, n: None)
        self.on_create = on_create or (lambda job: None)
        self.gets = 0

    def _key(self, group, version, namespace, plural, name):
        return (group, version, namespace, plural, name)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
        name = body["metadata"]["name"]
        self.calls.append(("create", namespace, name, kwargs))
        key = self._key(group, version, namespace, plural, name)
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        job = copy.deepcopy(body)
        job.setdefault("metadata", {})["uid"] = f"uid-{len(self.calls)}"
        job["metadata"].update(generation=1, resourceVersion="1")
        self.objects[key] = job
        self.on_create(job)
        return copy.deepcopy(job)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", namespace, name))
        key = self._key(group, version, namespace, plural, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        self.gets += 1
        self.on_get(self.objects[key], self.gets)
        return copy.deepcopy(self.objects[key])

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append(("patch", namespace, name, copy.deepcopy(body)))
        key = self._key(group, version, namespace, plural, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        self.objects[key]["metadata"].update(copy.deepcopy(body.get("metadata", {})))  # a merge patch of metadata
        return copy.deepcopy(self.objects[key])

    def replace_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        """PUT: the spec and metadata replaced (a stale resourceVersion is a 409), the status kept (a
        subresource), the generation bumped when the spec changed."""
        self.calls.append(("replace", namespace, name, copy.deepcopy(body)))
        key = self._key(group, version, namespace, plural, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        old = self.objects[key]
        if body["metadata"].get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise ApiException(status=409, reason="Conflict")
        new = copy.deepcopy(body)
        new.pop("status", None)
        if "status" in old:
            new["status"] = old["status"]
        changed = new.get("spec") != old.get("spec")
        new["metadata"].update(uid=old["metadata"]["uid"], resourceVersion=str(int(old["metadata"]["resourceVersion"]) + 1),
                               generation=old["metadata"]["generation"] + changed)
        self.objects[key] = new
        return copy.deepcopy(new)

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self.calls.append(("delete", namespace, name, kwargs))
        key = self._key(group, version, namespace, plural, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        del self.objects[key]
        return {}

    def verbs(self) -> list[str]:
        return [c[0] for c in self.calls if c[0] != "get"]

    def only(self) -> dict:
        (job,) = self.objects.values()
        return job


class _Stream:
    def __init__(self, text: str):
        self.data = text.encode()
        self.released = False

    def stream(self, amt: int = 7):  # small chunks: lines cross chunk boundaries
        for i in range(0, len(self.data), amt):
            yield self.data[i:i + amt]

    def release_conn(self):
        self.released = True


def pod(name: str, labels: dict, phase: str = "Running", exit_code: int | None = None, restarts: int = 0) -> V1Pod:
    state = V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=exit_code)) if exit_code is not None \
        else V1ContainerState()
    status = V1ContainerStatus(name="c", image="i", image_id="", ready=phase == "Running", restart_count=restarts,
                               state=state)
    return V1Pod(metadata=V1ObjectMeta(name=name, uid=f"uid-{name}", labels=labels),
                 status=V1PodStatus(phase=phase, container_statuses=[status]))


class FakeCoreV1:
    def __init__(self, pods: list[V1Pod] | None = None, logs: dict | None = None):
        self.pods = pods or []
        self.logs = logs or {}
        self.calls: list = []

    def list_namespaced_pod(self, namespace, label_selector=None):
        self.calls.append(("list", namespace, label_selector))
        return V1PodList(items=list(self.pods))

    def read_namespaced_pod_log(self, name, namespace, container=None, follow=False, _preload_content=True,
                                tail_lines=None):
        self.calls.append(("log", name, container, follow, tail_lines))
        text = self.logs.get(name, "")
        if not _preload_content:
            return _Stream(text)
        lines = text.splitlines()
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)
