"""Credentials out of everything sslmae writes or shows: one rule for every URI-valued setting.

A URI's user info (`http://user:password@host`) and its credential query parameters (AWS SigV4
`X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`; Azure SAS `sig`; GCS
`X-Goog-Signature`, `X-Goog-Credential`; any parameter named like a token, password, secret,
signature, credential, access key or key) become `***`. The rule applies to text (a log line, an error
message), to config values, and to whole configs (`redacted`); the process itself keeps using
the real values. Redacting is idempotent, so a redacted config compares equal to the config of
a run given the same object with a fresh signature (resume, "same params").
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from typing import Any, Iterator

MASK = "***"

# scheme://user[:password]@ — the user info of any URI
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s@?#'\"]+)@")
_SECRET_NAMES = r"(?:[a-z0-9_\-]*(?:token|password|passwd|secret|signature|credential|apikey|api_key|accesskey|access_key)[a-z0-9_\-]*|sig|key)"
# ?name=value or &name=value, for the names above (case-insensitive), up to the next & # quote or
# space, or a colon that ends the URI in a message ("s3://b/x?sig=abc: not found")
_QUERY = re.compile(rf"(?i)([?&]{_SECRET_NAMES}=)[^&#\s'\"]*?(?=[&#\s'\"]|:\s|:$|$)")


def redact(text: str) -> str:
    """`text` with every credential in a URI replaced by `***`."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@" if m.group(2) != MASK else m.group(0), text)
    return _QUERY.sub(lambda m: m.group(1) + MASK, text)


def redacted(value: Any) -> Any:
    """A config (dict, list or scalar) with every string redacted; the same structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)
    return value


class RedactingStream:
    """A text stream that redacts every write (stdout and stderr of the CLI): log lines and
    messages of sslmae and of the libraries it drives (MLflow names its tracking URI)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """stdout and stderr redacted for the duration, and so are the logging handlers that already
    hold them (Lightning adds one when it is imported)."""
    out, err = sys.stdout, sys.stderr
    if isinstance(out, RedactingStream):  # already inside (a command run by a command)
        yield
        return
    sys.stdout, sys.stderr = RedactingStream(out), RedactingStream(err)
    swapped = []
    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (out, err):
                swapped.append((handler, handler.stream))
                handler.setStream(sys.stdout if handler.stream is out else sys.stderr)
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)
        sys.stdout, sys.stderr = out, err
