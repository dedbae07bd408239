"""A stand-in for the Kubeflow Pipelines API server (REST v2beta1), enough for kfp.Client's
experiments, pipelines and versions, runs and recurring runs: the real `kfp.Client` and
`kfp_server_api` code talk HTTP to it, and it records every request. What it verifies is the
client side (which calls sslmae makes, in which order, with which bodies); the server's own
semantics (authorization, filters beyond display_name equality, scheduling) are not KFP's."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


@dataclass
class FakeKFP:
    multi_user: bool = False
    requests: list = field(default_factory=list)  # (method, path, query dict, json body or None)
    experiments: dict = field(default_factory=dict)
    pipelines: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)  # pipeline_id -> [version dicts]
    recurring: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    host: str = ""
    refusals: list = field(default_factory=list)  # (method or None, path prefix under API, status, body)

    def refuse(self, status: int, body, method: str | None = None, prefix: str = "") -> "FakeKFP":
        """Answer requests of `method` (None: any) whose path under the API starts with `prefix`
        with `status` and `body` (a dict: JSON; a str: text, as an auth proxy in front of the API
        server answers), as an API server that refuses them would; the first matching refusal wins."""
        self.refusals.append((method, prefix, status, body))
        return self

    def calls(self, method: str | None = None, prefix: str = "") -> list:
        return [r for r in self.requests if (method is None or r[0] == method) and r[1].startswith(API + prefix)]

    # ------------------------------------------------------------------ the API

    def handle(self, method: str, path: str, query: dict, body) -> tuple[int, dict]:
        p = path[len(API):]
        for want, prefix, status, answer in self.refusals:
            if (want is None or want == method) and p.startswith(prefix):
                return status, answer
        name_filter = _display_name(query.get("filter"))
        if p == "/healthz":
            return 200, {"multi_user": self.multi_user}
        if p == "/experiments" and method == "GET":
            found = [e for e in self.experiments.values()
                     if (name_filter is None or e["display_name"] == name_filter)
                     and (not query.get("namespace") or e.get("namespace") == query["namespace"])]
            return 200, {"experiments": found, "total_size": len(found)}
        if p == "/experiments" and method == "POST":
            exp = dict(body, experiment_id=_id())
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if p == "/pipelines" and method == "GET":
            found = [x for x in self.pipelines.values() if name_filter is None or x["display_name"] == name_filter]
            return 200, {"pipelines": found, "total_size": len(found)}
        if p == "/pipelines/upload" and method == "POST":
            pid = _id()
            name = query.get("name") or query.get("display_name")
            self.pipelines[pid] = {"pipeline_id": pid, "display_name": name, "namespace": query.get("namespace")}
            self.versions[pid] = [{"pipeline_id": pid, "pipeline_version_id": _id(), "display_name": name}]
            return 200, self.pipelines[pid]
        if p == "/pipelines/upload_version" and method == "POST":
            pid = query["pipelineid"]
            version = {"pipeline_id": pid, "pipeline_version_id": _id(), "display_name": query.get("name")}
            self.versions[pid].append(version)
            return 200, version
        if p.startswith("/pipelines/") and p.endswith("/versions") and method == "GET":
            pid = p.split("/")[2]
            return 200, {"pipeline_versions": list(reversed(self.versions.get(pid, []))),
                         "total_size": len(self.versions.get(pid, []))}
        if p == "/recurringruns" and method == "GET":
            found = [r for r in self.recurring.values()
                     if (not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"])
                     and (name_filter is None or r["display_name"] == name_filter)]
            return 200, {"recurringRuns": found, "total_size": len(found)}
        if p == "/recurringruns" and method == "POST":
            run = dict(body, recurring_run_id=_id(), status="ENABLED")
            self.recurring[run["recurring_run_id"]] = run
            return 200, run
        if p.startswith("/recurringruns/") and method == "DELETE":
            self.recurring.pop(p.split("/")[2], None)
            return 200, {}
        if p.startswith("/recurringruns/") and p.endswith((":disable", ":enable")) and method == "POST":
            rid, action = p.split("/")[2].split(":")
            self.recurring[rid]["status"] = "DISABLED" if action == "disable" else "ENABLED"
            return 200, {}
        if p == "/runs" and method == "POST":
            run = dict(body, run_id=_id())
            self.runs[run["run_id"]] = run
            return 200, run
        return 404, {"error": f"{method} {path} not in the fake"}


def _id() -> str:
    return str(uuid.uuid4())


def _display_name(text: str | None) -> str | None:
    if not text:
        return None
    for pred in json.loads(text).get("predicates", []):
        if pred.get("key") in ("display_name", "name") and pred.get("operation") in ("EQUALS", 1):
            return pred.get("stringValue") or pred.get("string_value")
    return None


def serve(fake: FakeKFP):
    """Start the server in a thread; returns (fake with .host set, stop function)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _do(self, method: str):
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = None
            if raw and "json" in (self.headers.get("Content-Type") or ""):
                body = json.loads(raw)
            elif raw:
                body = {"multipart_bytes": len(raw)}
            fake.requests.append((method, url.path, query, body))
            status, payload = fake.handle(method, url.path, query, body)
            text = isinstance(payload, str)  # a refusal's plain-text body (FakeKFP.refuse)
            data = payload.encode() if text else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._do("GET")

        def do_POST(self):
            self._do("POST")

        def do_DELETE(self):
            self._do("DELETE")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"

    def stop():
        server.shutdown()
        server.server_close()

    return fake, stop
