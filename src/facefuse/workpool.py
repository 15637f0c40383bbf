"""A bounded pool of work processes for CPU-bound jobs: a full queue refuses at once instead of
growing latency."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from facefuse.errors import Err, FacefuseError

T = TypeVar("T")

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 512 * 1024 * 1024
PIPE_BYTES = 1024 * 1024
SWITCH_INTERVAL = 0.001  # s; Python's default is 0.005
_SINGLE_THREAD_LIBRARIES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def tune_allocator() -> None:
    """glibc keeps freed memory for the next request instead of handing every multi-MB
    buffer back to the kernel and faulting it in again, zeroed, on the next allocation
    (a work process at 1 MP: ~9,900 page faults and ~16-40 ms of kernel time per request,
    tuned ~20; the HTTP process: a 333 KB base64 upload decoded in 0.37 ms instead of
    0.5). The heap then stays at the largest request's working set: flat, not growing."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "mallopt"):  # glibc; elsewhere the defaults stay
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TOP_PAD, 64 * 1024 * 1024)


def tune_for_compute() -> None:
    """Settings of a work process for CPU-bound image work (measured with `facefuse bench`,
    docs/performance.md):

    - the allocator keeps freed memory (tune_allocator);
    - OpenCV runs each call on the calling thread: the work processes are the parallelism
      (one per core); OpenCV's own pool only added spinning threads.
    - A short GIL switch interval keeps the process's small helper threads responsive.
    """
    tune_allocator()
    import cv2

    cv2.setNumThreads(1)
    sys.setswitchinterval(SWITCH_INTERVAL)


class WorkPool:
    """`workers` processes each run one job at a time; up to `queue_size` more jobs wait;
    the rest get SERVER_BUSY at once. When a process dies (a crash in native code, a kill)
    the pool starts afresh; the job it held is tried once more if idempotent, else it
    answers PROCESS_ERROR."""

    def __init__(self, workers: int, queue_size: int, deadline: float,
                 initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self.deadline = deadline
        self._initializer = initializer
        self._initargs = initargs
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._executor: ProcessPoolExecutor | None = None  # started by warm_up() or the first job
        self._admitted = 0
        self._lock = threading.Lock()

    def _new_executor(self, barrier: Any) -> ProcessPoolExecutor:
        # Read by numpy's OpenBLAS when a work process imports it: its helper threads spin
        # after every call and took a whole second core (1 MP: 62 -> 32 ms CPU per request).
        for name in _SINGLE_THREAD_LIBRARIES:
            os.environ.setdefault(name, "1")
        executor = ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=self._initializer,
                                       initargs=(*self._initargs, barrier))
        _widen_pipes(executor)
        return executor

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = self._new_executor(None)
            return self._executor

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def refuse_if_full(self) -> None:
        """SERVER_BUSY now if run() would refuse: lets a caller skip parsing a request it cannot take."""
        if self._admitted >= self.capacity:
            raise _busy()

    async def run(self, fn: Callable[..., T], *args: object, idempotent: bool = False) -> T:
        """fn(*args) in a work process within the deadline, or refuse if the queue is full.
        fn must be a module-level function and args plain data: they cross a pipe.

        If the process running it dies, an idempotent job is tried once more on a fresh
        process (a crash of another job, or a kill, must not fail it); a second loss, or
        the loss of a job with side effects, answers PROCESS_ERROR."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise _busy()
            self._admitted += 1
        try:
            return await asyncio.wait_for(self._run_admitted(fn, args, 2 if idempotent else 1), self.deadline)
        except asyncio.TimeoutError:
            raise FacefuseError(
                Err.PROCESS_TIMEOUT, f"processing took longer than {self.deadline:g} s"
            ) from None

    async def _run_admitted(self, fn: Callable[..., T], args: tuple[object, ...], attempts: int) -> T:
        """Run an admitted job; its admission ends when the job does (even after a deadline)."""
        waited_out = False
        try:
            for attempt in range(1, attempts + 1):
                executor, submitted = self._submit(fn, *args)
                future = asyncio.wrap_future(submitted)
                try:
                    return await asyncio.shield(future)  # a deadline stops the wait, not the job
                except BrokenProcessPool:
                    lost = self._restart(executor)
                    if attempt == attempts:
                        raise lost from None
                except asyncio.CancelledError:
                    future.add_done_callback(self._release)
                    waited_out = True
                    raise
            raise AssertionError("unreachable")
        finally:
            if not waited_out:
                self._release()

    def _submit(self, fn: Callable[..., T], *args: object) -> tuple[ProcessPoolExecutor, Any]:
        """Submit to the pool; a pool found broken (a process died while idle) is replaced
        and the job goes to the new one: only jobs running at a crash are lost."""
        executor = self._current()
        try:
            return executor, executor.submit(fn, *args)
        except BrokenProcessPool:
            self._restart(executor)
            executor = self._current()
            return executor, executor.submit(fn, *args)

    def _release(self, future: asyncio.Future[Any] | None = None) -> None:
        if future is not None and not future.cancelled():
            future.exception()  # retrieved: a job nobody waits for any more logs nothing
        with self._lock:
            self._admitted -= 1

    def _restart(self, broken: ProcessPoolExecutor) -> FacefuseError:
        """Replace a broken pool (once, however many jobs saw it break)."""
        with self._lock:
            if self._executor is broken:
                self._executor = self._new_executor(None)  # its processes load models on their first job
        broken.shutdown(wait=False, cancel_futures=True)
        return FacefuseError(Err.PROCESS_ERROR, "the work process handling this request stopped")

    def warm_up(self, fn: Callable[[], object]) -> None:
        """Start every work process and run fn once in each (fn waits on the pool's barrier,
        so no process can take two): the models are loaded before the first request."""
        with self._lock:
            if self._executor is None:
                self._executor = self._new_executor(self._context.Barrier(self.workers))
            executor = self._executor
        futures = [executor.submit(fn) for _ in range(self.workers)]
        for future in futures:
            future.result(timeout=240)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=False)


def _widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Let a whole job or result fit in the pipes between the processes (Linux: 64 KB by default)."""
    import fcntl
    for queue in (getattr(executor, "_call_queue", None), getattr(executor, "_result_queue", None)):
        writer = getattr(queue, "_writer", None)
        if writer is None:
            continue
        try:
            fcntl.fcntl(writer.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass


def _busy() -> FacefuseError:
    return FacefuseError(Err.SERVER_BUSY, "the work queue is full; retry in a moment")
