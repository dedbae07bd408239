"""Dynamic batching across concurrent requests, as Triton's dynamic batcher and TorchServe's
batch_size/max_batch_delay do it: a request's images wait in a queue; the first waiting request
opens a batch, which closes when it holds `max_batch` images or `max_wait_ms` has passed, and the
whole batch is one forward pass. The model runs on one thread (torch already uses every core for
one pass), so requests never contend for it.

With batching off each request is scored alone, its own images still one forward pass."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class _Waiting:
    images: list[np.ndarray]
    done: asyncio.Future
    since: float = field(default_factory=time.monotonic)


class Batcher:
    """`await score(images)` -> (N, C) scores of those N images, from `run` (list -> (N, C))."""

    def __init__(self, run: Callable[[list[np.ndarray]], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 5.0, batching: bool = True, observe: Callable[[int], None] = lambda n: None):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"batching: max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000.0
        self.batching, self.observe = batching, observe  # observe(images in a forward pass): a metric
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="sslmae-model")
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def score(self, images: list[np.ndarray]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if not self.batching:
            return await loop.run_in_executor(self._model_thread, self._forward, images)
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._drain())
        waiting = _Waiting(images, loop.create_future())
        await self._queue.put(waiting)
        return await waiting.done

    def _forward(self, images: list[np.ndarray]) -> np.ndarray:
        """Scores in passes of at most max_batch images (a larger request is split)."""
        parts = [self.run(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        self.observe(len(images))
        return np.concatenate(parts)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            held = len(batch[0].images)
            deadline = batch[0].since + self.max_wait
            while held < self.max_batch:
                try:
                    nxt = self._queue.get_nowait() if time.monotonic() >= deadline else \
                        await asyncio.wait_for(self._queue.get(), deadline - time.monotonic())
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                batch.append(nxt)
                held += len(nxt.images)
            images = [img for w in batch for img in w.images]
            try:
                scores = await loop.run_in_executor(self._model_thread, self._forward, images)
            except Exception as exc:  # the model failed: every request of the batch learns why
                for w in batch:
                    if not w.done.done():
                        w.done.set_exception(exc)
                continue
            start = 0
            for w in batch:
                n = len(w.images)
                if not w.done.done():  # a client that went away cancelled its future
                    w.done.set_result(scores[start:start + n])
                start += n

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._model_thread.shutdown(wait=True)
