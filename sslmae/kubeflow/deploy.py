"""Rolling a registry version out to its KServe InferenceService, and back:

    deploy    create, or replace the predictor of, the service (optionally as a canary taking P %
              of the traffic), then wait until it is ready. A rollout that fails or times out puts
              the previous spec back (the previous revision keeps serving; Knative never routes to
              a revision that is not ready) and raises DeployError naming the reason.
    promote   a canary takes all traffic (canaryTrafficPercent removed), as KServe's docs do it.
    rollback  all traffic back to the revision rolled out before (canaryTrafficPercent: 0, KServe's
              documented rollback), and the service's record of which model serves swapped back.

Talks to the API through a CustomObjectsApi (kubernetes.client, or tests' recording fake)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

from sslmae.kubeflow.k8sjob import cluster_apis, get_custom, launcher_namespace
from sslmae.kubeflow.inference_service import (GROUP, MODEL_ANNOTATION, PLURAL, PREVIOUS_ANNOTATION, VERSION,
                                               ServiceSpec, manifest, rollout, served_model)


class DeployError(ValueError):
    """A rollout that did not happen; the message says why and what serves now."""


@dataclass
class Deployer:
    custom: object  # kubernetes.client.CustomObjectsApi
    namespace: str
    log: Callable[[str], None] = print
    poll_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    clock: Callable[[], float] = field(default=time.monotonic)

    def get(self, name: str) -> dict | None:
        return get_custom(self.custom, GROUP, VERSION, self.namespace, PLURAL, name)

    def _replace(self, obj: dict) -> None:
        self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, obj["metadata"]["name"],
                                                     obj)

    def deploy(self, spec: ServiceSpec, canary: int | None = None, timeout_s: float = 900) -> dict:
        """Serve `spec.model` from service `spec.name`; -> {service, model, previous, canary, traffic}."""
        current = self.get(spec.name)
        previous = served_model(current)
        pending_canary = (current or {}).get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
        if previous == spec.model and canary == pending_canary:
            self.log(f"deploy: {spec.name} already serves {spec.model}: nothing to change")
            return {"service": spec.name, "model": spec.model, "previous": previous, "canary": canary, "changed": False}
        # the model served before this one; unchanged when only the canary share changes
        before = previous if previous != spec.model else \
            ((current or {}).get("metadata", {}).get("annotations") or {}).get(PREVIOUS_ANNOTATION)
        body = manifest(spec, canary, previous=before)
        if spec.namespace and spec.namespace != self.namespace:
            raise ValueError(f"deploy: the service's namespace {spec.namespace!r} is not {self.namespace!r}")
        body["metadata"].pop("namespace", None)
        if current is None:
            self.log(f"deploy: creating InferenceService {self.namespace}/{spec.name} serving {spec.model}")
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        else:
            body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            self.log(f"deploy: {spec.name}: {previous} -> {spec.model}"
                     + (f" as a canary taking {canary} % of the traffic" if canary is not None else ""))
            self._replace(body)
        state, why = self.wait(spec.name, timeout_s)
        if state != "ready":
            raise DeployError(self._undo(spec, current, why))
        self.log(f"deploy: {spec.name} serves {spec.model} (traffic: {why})")
        return {"service": spec.name, "model": spec.model, "previous": previous, "canary": canary, "changed": True,
                "traffic": why}

    def _undo(self, spec: ServiceSpec, before: dict | None, why: str) -> str:
        said = f"deploy: {spec.name}: {spec.model} did not become ready: {why}"
        if before is None:
            return f"{said}; the service is new, so nothing served before it (delete it or deploy a good version)"
        restored = copy.deepcopy(before)
        restored.pop("status", None)
        now = self.get(spec.name) or {}
        restored["metadata"]["resourceVersion"] = now.get("metadata", {}).get("resourceVersion")
        self._replace(restored)
        return f"{said}; its previous spec is restored and {served_model(before)} keeps serving"

    def wait(self, name: str, timeout_s: float) -> tuple[str, str]:
        """('ready' | 'failed' | 'timeout', why) once the rollout settles or `timeout_s` passes."""
        deadline, why = self.clock() + timeout_s, "not found"
        while True:
            obj = self.get(name)
            if obj is not None:
                state, why = rollout(obj)
                if state in ("ready", "failed"):
                    return state, why
            if self.clock() >= deadline:
                return "timeout", f"not ready after {timeout_s:g} s ({why})"
            self.sleep(self.poll_s)

    def promote(self, name: str, timeout_s: float = 900) -> dict:
        obj = self._existing(name)
        predictor = obj["spec"]["predictor"]
        if "canaryTrafficPercent" not in predictor:
            self.log(f"deploy: {name} has no canary: {served_model(obj)} already takes all traffic")
            return {"service": name, "model": served_model(obj), "changed": False}
        del predictor["canaryTrafficPercent"]
        obj.pop("status", None)
        self._replace(obj)
        self.log(f"deploy: {name}: {served_model(obj)} promoted to all traffic")
        return self._settled(name, timeout_s, "promote")

    def rollback(self, name: str, timeout_s: float = 900) -> dict:
        obj = self._existing(name)
        notes = obj["metadata"].setdefault("annotations", {})
        previous = notes.get(PREVIOUS_ANNOTATION)
        if not previous:
            raise DeployError(f"deploy: {name}: no earlier model on record ({PREVIOUS_ANNOTATION}): nothing to roll "
                              "back to; deploy the version you want instead")
        obj["spec"]["predictor"]["canaryTrafficPercent"] = 0
        notes[MODEL_ANNOTATION], notes[PREVIOUS_ANNOTATION] = previous, notes[MODEL_ANNOTATION]
        obj.pop("status", None)
        self._replace(obj)
        self.log(f"deploy: {name}: all traffic back to the revision serving {previous}")
        return self._settled(name, timeout_s, "rollback")

    def _existing(self, name: str) -> dict:
        obj = self.get(name)
        if obj is None:
            raise DeployError(f"deploy: no InferenceService {self.namespace}/{name}")
        return obj

    def _settled(self, name: str, timeout_s: float, what: str) -> dict:
        state, why = self.wait(name, timeout_s)
        if state != "ready":
            raise DeployError(f"deploy: {what} of {name}: {why}")
        return {"service": name, "model": served_model(self.get(name)), "changed": True, "traffic": why}


def deploy_command(action: str, service: str, namespace: str = "", timeout_s: float = 900,
                   spec: ServiceSpec | None = None, canary: int | None = None, custom=None, log=print) -> dict:
    """`sslmae deploy`: action 'deploy' (spec: the version to serve), 'promote' or 'rollback' on
    service `service` in `namespace` (default: this pod's, else 'default'); custom: a
    CustomObjectsApi (default: the pod's service account, else ~/.kube/config)."""
    deployer = Deployer(custom or cluster_apis()[0], launcher_namespace(namespace), log=log)
    if action == "deploy":
        return deployer.deploy(spec, canary, timeout_s)
    return {"promote": deployer.promote, "rollback": deployer.rollback}[action](service, timeout_s)
