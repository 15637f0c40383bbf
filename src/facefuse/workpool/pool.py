"""The scheduler: admission (a full queue refuses at once instead of growing latency), the
deadline, which process gets which job, and recovery when a process dies."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from facefuse.errors import Err, FacefuseError
from facefuse.workpool import framing
from facefuse.workpool.load import PoolLoad
from facefuse.workpool.process import Job, ProcessLost, WorkProcess
from facefuse.workpool.tuning import single_threaded_libraries, usable_cores

T = TypeVar("T")


class WorkPool:
    """`workers` processes each run one job at a time; up to `queue_size` more jobs wait;
    the rest get SERVER_BUSY at once. Each busy process is also handed the next waiting
    job, which sits in its pipe until it is free: a process goes from one job to the next
    without waiting for the event loop to be scheduled. A process that dies (a crash in
    native code, a kill) is replaced; the jobs it held are tried once more if idempotent,
    else they answer PROCESS_ERROR. Other processes and their jobs are not touched.

    `initializer(*initargs, load=pool.load)` runs first in every work process; `load` is
    the pool's PoolLoad (jobs admitted, cores), which the process may read at any time.

    With at least as many workers as cores (`pin_to_cores`), each process runs on a core of
    its own (see _free_core).

    run() is called on an event loop; warm_up() and shutdown() from plain threads."""

    def __init__(
        self,
        workers: int,
        queue_size: int,
        deadline: float,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        pin_to_cores: bool = True,
    ) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self.deadline = deadline
        self._initializer = initializer
        self._initargs = initargs
        cores = sorted(usable_cores())
        self._cores = cores if pin_to_cores and len(cores) > 1 and workers >= len(cores) else []
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self.load = PoolLoad.shared(self._context, set(cores))  # what the work processes read
        self._processes: list[WorkProcess] = []
        self._waiting: collections.deque[Job] = collections.deque()
        self._admitted = 0
        self._lock = threading.RLock()

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def _admit(self, change: int) -> None:
        self._admitted += change
        self.load.admitted = self._admitted

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
        if self._admitted >= self.capacity:
            raise _busy()
        message = framing.frame(pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL))
        self._admit(1)
        try:
            return await asyncio.wait_for(self._run_admitted(message, 2 if idempotent else 1), self.deadline)
        except asyncio.TimeoutError:
            raise FacefuseError(Err.PROCESS_TIMEOUT, f"processing took longer than {self.deadline:g} s") from None

    async def _run_admitted(self, message: bytes, attempts: int) -> Any:
        """Run an admitted job; its admission ends when the job does (even after a deadline:
        a job handed to a process runs to its end and keeps its place until then)."""
        loop = asyncio.get_running_loop()
        job = Job(message, loop.create_future(), idempotent=attempts > 1)
        released_later = False
        try:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    job = Job(message, loop.create_future(), idempotent=True)
                self._submit(loop, job)
                try:
                    return await asyncio.shield(job.outcome)  # a deadline stops the wait, not the job
                except ProcessLost:
                    if attempt == attempts:
                        raise FacefuseError(
                            Err.PROCESS_ERROR, "the work process handling this request stopped"
                        ) from None
            raise AssertionError("unreachable")
        except asyncio.CancelledError:
            if not job.outcome.done() and job.sent:
                job.outcome.add_done_callback(self._release)
                released_later = True
            elif not job.outcome.done():
                self._drop_waiting(job)
            raise
        finally:
            if not released_later:
                self._release()

    def _release(self, outcome: asyncio.Future[Any] | None = None) -> None:
        if outcome is not None and not outcome.cancelled():
            outcome.exception()  # retrieved: a job nobody waits for any more logs nothing
        self._admit(-1)

    def _submit(self, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        with self._lock:
            self._waiting.append(job)
            self._dispatch(loop)

    def _drop_waiting(self, job: Job) -> None:
        with self._lock:
            with contextlib.suppress(ValueError):
                self._waiting.remove(job)
        job.outcome.cancel()

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand waiting jobs to processes: free ones first, then one more to each busy one.
        Starts processes up to `workers`; called with the lock held."""
        self._processes = [p for p in self._processes if p.usable()]
        while self._waiting and len(self._processes) < self.workers:
            self._processes.append(self._spawn())
        for depth in (0, 1):
            for process in self._processes:
                # Only a job that may run twice waits in a busy process's pipe: if that
                # process dies, the job is lost with it, though it never started.
                if self._waiting and process.can_take(loop, depth) and (depth == 0 or self._waiting[0].idempotent):
                    job = self._waiting.popleft()
                    if not process.give(loop, job):
                        self._waiting.appendleft(job)  # it never reached the process: it stays first
                        process.fail()
        if self._waiting and any(not p.alive() for p in self._processes):
            loop.call_soon(self._redispatch, loop)  # replace the dead, then try again

    def _redispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """A process answered or died: waiting jobs may move (a dead process is replaced)."""
        if self._waiting:
            with self._lock:
                self._dispatch(loop)

    def _spawn(self, starting: Sequence[WorkProcess] = ()) -> WorkProcess:
        single_threaded_libraries()
        return WorkProcess.spawn(
            self._context, self._initializer, self._initargs, self.load, self._redispatch, self._free_core(starting)
        )

    def _free_core(self, starting: Sequence[WorkProcess]) -> int | None:
        """The core for a new process (`starting`: others not in the pool yet): the one the
        fewest live processes run on; None when not pinning.

        A job hops between a work process's own threads (mediapipe runs each graph on a
        pool of them), and a thread woken on a busy core waits there while another core
        idles; pinned, each process keeps its core busy (docs/performance.md). With fewer
        workers than cores the scheduler stays free to spread their threads."""
        if not self._cores:
            return None
        taken = collections.Counter(p.core for p in [*self._processes, *starting] if p.alive())
        return min(self._cores, key=lambda core: taken[core])

    def warm_up(self, fn: Callable[[], object]) -> None:
        """Start every work process and run fn once in each, so that the models are loaded
        before the first request (called from a thread, before traffic)."""
        with self._lock:
            fresh: list[WorkProcess] = []
            for _ in range(self.workers - len(self._processes)):
                fresh.append(self._spawn(starting=fresh))
        message = framing.frame(pickle.dumps((fn, ()), pickle.HIGHEST_PROTOCOL))
        try:
            for process in fresh:
                process.send_blocking(message)
            for process in fresh:
                ok, value, _ = pickle.loads(process.receive_blocking(timeout=240))
                if not ok:
                    raise value
        except BaseException:
            for process in fresh:
                process.kill()
            raise
        with self._lock:
            self._processes.extend(fresh)

    def shutdown(self) -> None:
        """Stop every process; a job still running gets a few seconds to finish."""
        with self._lock:
            processes, self._processes = self._processes, []
        _unwatch_on_their_loops(processes)
        for process in processes:
            process.stop_taking_jobs()
        deadline = time.monotonic() + 10
        for process in processes:
            process.process.join(max(0.0, deadline - time.monotonic()))
            process.kill()


def _unwatch_on_their_loops(processes: list[WorkProcess]) -> None:
    """Stop the loops watching these processes' pipes, each on its own thread (shutdown()
    runs on another thread; a loop's watchers are changed only by that loop)."""
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for loop in {p.loop for p in processes if p.loop is not None and not p.loop.is_closed()}:
        watched = [p for p in processes if p.loop is loop]
        if loop is current:
            for process in watched:
                process.unwatch()
            continue
        done = threading.Event()

        def unwatch_all(watched: list[WorkProcess] = watched, done: threading.Event = done) -> None:
            for process in watched:
                process.unwatch()
            done.set()

        try:
            loop.call_soon_threadsafe(unwatch_all)
        except RuntimeError:  # the loop closed meanwhile: nothing watches any more
            continue
        done.wait(5)


def _busy() -> FacefuseError:
    return FacefuseError(Err.SERVER_BUSY, "the work queue is full; retry in a moment")
