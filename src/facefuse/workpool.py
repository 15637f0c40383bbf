"""A bounded pool for CPU-bound work: a full queue refuses at once instead of growing latency."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facefuse.errors import Err, FacefuseError

T = TypeVar("T")

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 512 * 1024 * 1024
SWITCH_INTERVAL = 0.001  # s; Python's default is 0.005


def tune_for_compute() -> None:
    """Process settings for CPU-bound image work, one request per thread (measured with
    `facefuse bench`, docs/performance.md):

    - glibc keeps freed memory for the next request instead of handing every multi-MB
      array back to the kernel and faulting it in again, zeroed, on the next allocation:
      at 1 MP that was ~9,900 page faults (~40 MB zeroed) and ~16-40 ms of kernel time per
      request; tuned, ~20 faults (1 worker: ~13 -> ~16 requests/s).
      The heap then stays at the largest request's working set: flat, not growing.
    - OpenCV runs each call on the calling thread: requests are the parallelism (one per
      work thread, one worker per core); OpenCV's own pool only added spinning threads.
    - The event loop waits at most 1 ms, not 5, for the GIL while a work thread runs
      Python code: /healthz and busy answers stay quick under load (saturated, 1 worker:
      healthz p99 ~115 -> ~60 ms, busy answers' p99 ~510 -> ~180 ms with clients that
      retry at once on a loaded machine).
    """
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "mallopt"):  # glibc; elsewhere the defaults stay
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    import cv2

    cv2.setNumThreads(1)
    sys.setswitchinterval(SWITCH_INTERVAL)


class WorkPool:
    """`threads` jobs run at once; up to `queue_size` more wait; the rest get SERVER_BUSY."""

    def __init__(self, threads: int, queue_size: int, deadline: float,
                 thread_init: Callable[[], None] | None = None) -> None:
        tune_for_compute()
        self.threads = threads
        self.capacity = threads + queue_size
        self.deadline = deadline
        self._executor = ThreadPoolExecutor(threads, "facefuse-work", initializer=thread_init)
        self._admitted = 0
        self._lock = threading.Lock()

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def refuse_if_full(self) -> None:
        """SERVER_BUSY now if run() would refuse: lets a caller skip parsing a request it cannot take."""
        if self._admitted >= self.capacity:
            raise _busy()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) on a worker thread within the deadline, or refuse if the queue is full."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise _busy()
            self._admitted += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.deadline)
        except asyncio.TimeoutError:
            raise FacefuseError(
                Err.PROCESS_TIMEOUT, f"processing took longer than {self.deadline:g} s"
            ) from None

    def _release(self, _future: object) -> None:
        with self._lock:
            self._admitted -= 1

    def warm_up(self, fn: Callable[[], None]) -> None:
        """Run fn once on every worker thread (loads the models before the first request)."""
        barrier = threading.Barrier(self.threads)

        def on_each_thread() -> None:
            fn()
            barrier.wait(timeout=120)

        for future in [self._executor.submit(on_each_thread) for _ in range(self.threads)]:
            future.result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


def _busy() -> FacefuseError:
    return FacefuseError(Err.SERVER_BUSY, "the work queue is full; retry in a moment")
