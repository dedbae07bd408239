"""Progress of long work (ingest, the image-cache build, evaluate, predict): a bar on a terminal
(tqdm, as Lightning's own bar), and where there is none (DVC logs, Kubeflow pods) a line on
stderr every few seconds with done/total and the rate. The caller's last line says how many,
how long and where the output went."""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
EVERY_S = 5.0  # seconds between lines where there is no terminal; $SSLMAE_PROGRESS_EVERY_S overrides


def progress(items: Iterable[T], desc: str, total: int | None = None, stream=None,
             every_s: float | None = None) -> Iterator[T]:
    """Yield `items`, showing how far along they are. total: len(items) when not given."""
    stream = stream or sys.stderr
    every_s = every_s if every_s is not None else float(os.environ.get("SSLMAE_PROGRESS_EVERY_S", EVERY_S))
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if stream.isatty():
        yield from tqdm(items, desc=desc, total=total, file=stream, leave=False, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= every_s and (total is None or done < total):
            of = f"/{total} ({100 * done / total:.0f} %)" if total else ""
            print(f"{desc}: {done}{of}, {done / (now - start):.1f}/s", file=stream, flush=True)
            last = now


class Stopwatch:
    """Seconds since it was made: for the final line of a long step."""

    def __init__(self):
        self.start = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.start:.1f} s"
