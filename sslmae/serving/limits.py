"""An ASGI middleware in front of KServe's app: request bodies above a size limit are refused
with 413 before they are read into memory (by Content-Length, or counted as they stream in),
and inference requests that are not JSON get 415; both as KServe's {"error": ...} JSON."""

from __future__ import annotations

import json

JSON_TYPES = ("application/json", "application/cloudevents+json")


def _json_reply(status: int, message: str):
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


async def _drain(receive) -> None:
    """Read and drop the request body, chunk by chunk (nothing is kept)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _is_inference(path: str) -> bool:
    return path.endswith("/infer") or path.endswith(":predict")


class RequestLimits:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope["path"], headers)
        if refusal:
            await _drain(receive)  # a reply before the body is read makes TCP reset the client's upload
            for message in _json_reply(*refusal):
                await send(message)
            return
        seen, refused, started = 0, False, False

        async def counted():
            # a streamed (chunked) body has no Content-Length: count it, and past the limit answer
            # 413 here and tell the app the client left, so it stops reading and its reply is dropped
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes and not refused:
                refused = True
                if not started:
                    for reply in _json_reply(413, self._too_large()):
                        await send(reply)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded_send)

    def _too_large(self) -> str:
        return f"request body above the server's limit of {self.max_bytes:,} bytes: send fewer images per request"

    def _refusal(self, path: str, headers: dict) -> tuple[int, str] | None:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return 413, self._too_large()
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if _is_inference(path) and ctype and ctype not in JSON_TYPES and "inference-header-content-length" not in headers:
            return 415, f"content-type {ctype!r}: send JSON (application/json)"
        if _is_inference(path) and length == "0":
            return 400, "empty request body: send a JSON inference request"
        return None
