"""A bounded pool of work processes for CPU-bound jobs: a full queue refuses at once instead of
growing latency.

Each work process has its own pair of pipes. The event loop writes a job straight into the
process's pipe and reads the answer when the pipe turns readable: no helper threads, so no
GIL hand-offs between them and the event loop (with concurrent.futures' process pool and
its two threads, the HTTP process took 2.67 ms of CPU per 1 MP request under 2-worker
load; with this, 2.20 ms; docs/performance.md). Messages are framed
here (8-byte length), so the event loop never blocks on a pipe: a job larger than the pipe
goes in as the process reads it, and an answer is gathered as it arrives."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import ctypes.util
import multiprocessing
import os
import pickle
import select
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
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

# In a work process: the pool's count of jobs running or waiting (shared memory, written by
# the pool) and the cores the process could use before it was pinned.
_pool_admitted: Any = None
_pool_cores: set[int] = set()


def single_threaded_libraries() -> None:
    """numpy's OpenBLAS (and OpenMP, MKL) on one thread in the processes started from now
    on, and in this one if it has not imported numpy yet (read when numpy loads). Its
    helper threads spin after every call and took a whole second core (a work process at
    1 MP: 62 -> 32 ms CPU per request)."""
    for name in _SINGLE_THREAD_LIBRARIES:
        os.environ.setdefault(name, "1")


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


def freeze_startup_objects() -> int:
    """A full collection now, then every object still alive (modules, models, the app) is
    left out of later ones; what is made afterwards is collected as usual. Under load a full
    collection walked them all: 125 ms in the HTTP process (every request in flight and
    /healthz waited; a bench run's saturated round read busy answers at 105-150 ms instead
    of 13-30), 45-65 ms in a work process (added to its job). Returns how many objects are
    left out now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


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
    the rest get SERVER_BUSY at once. Each busy process is also handed the next waiting
    job, which sits in its pipe until it is free: a process goes from one job to the next
    without waiting for the event loop to be scheduled. A process that dies (a crash in
    native code, a kill) is replaced; the jobs it held are tried once more if idempotent,
    else they answer PROCESS_ERROR. Other processes and their jobs are not touched.

    With at least as many workers as cores (`pin_to_cores`), each process runs on a core of
    its own (see _free_core).

    run() is called on an event loop; warm_up() and shutdown() from plain threads."""

    def __init__(self, workers: int, queue_size: int, deadline: float,
                 initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = (),
                 pin_to_cores: bool = True) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self.deadline = deadline
        self._initializer = initializer
        self._initargs = initargs
        cores = sorted(usable_cores())
        self._cores = cores if pin_to_cores and len(cores) > 1 and workers >= len(cores) else []
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._processes: list[_WorkProcess] = []
        self._waiting: collections.deque[_Job] = collections.deque()
        self._admitted = 0
        self._shared_admitted = self._context.RawValue("i", 0)  # what the work processes read of it
        self._lock = threading.RLock()

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    def _admit(self, change: int) -> None:
        self._admitted += change
        self._shared_admitted.value = self._admitted

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
        message = _frame(pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL))
        self._admit(1)
        try:
            return await asyncio.wait_for(self._run_admitted(message, 2 if idempotent else 1), self.deadline)
        except asyncio.TimeoutError:
            raise FacefuseError(
                Err.PROCESS_TIMEOUT, f"processing took longer than {self.deadline:g} s"
            ) from None

    async def _run_admitted(self, message: bytes, attempts: int) -> Any:
        """Run an admitted job; its admission ends when the job does (even after a deadline:
        a job handed to a process runs to its end and keeps its place until then)."""
        loop = asyncio.get_running_loop()
        job = _Job(message, loop.create_future(), idempotent=attempts > 1)
        released_later = False
        try:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    job = _Job(message, loop.create_future(), idempotent=True)
                self._submit(loop, job)
                try:
                    return await asyncio.shield(job.outcome)  # a deadline stops the wait, not the job
                except _ProcessLost:
                    if attempt == attempts:
                        raise FacefuseError(Err.PROCESS_ERROR,
                                            "the work process handling this request stopped") from None
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

    def _submit(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        with self._lock:
            self._waiting.append(job)
            self._dispatch(loop)

    def _drop_waiting(self, job: _Job) -> None:
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

    def _spawn(self, starting: Sequence[_WorkProcess] = ()) -> _WorkProcess:
        single_threaded_libraries()
        return _WorkProcess.spawn(self._context, self._initializer, self._initargs, self._shared_admitted, self,
                                  self._free_core(starting))

    def _free_core(self, starting: Sequence[_WorkProcess]) -> int | None:
        """The core for a new process (`starting`: others not in the pool yet): the one the
        fewest live processes run on; None when not pinning.

        A job hops between a work process's own threads (mediapipe runs each graph on a
        pool of them), and a thread woken on a busy core waited there while the other core
        went idle: 2 workers on 2 cores, unpinned, left 8-13 % of the machine idle under
        load; pinned, 47.6-48.3 -> 53.5-55.2 req/s (docs/performance.md). With fewer
        workers than cores the scheduler stays free to spread their threads."""
        if not self._cores:
            return None
        taken = collections.Counter(p.core for p in [*self._processes, *starting] if p.alive())
        return min(self._cores, key=lambda core: taken[core])

    def warm_up(self, fn: Callable[[], object]) -> None:
        """Start every work process and run fn once in each, so that the models are loaded
        before the first request (called from a thread, before traffic)."""
        with self._lock:
            fresh: list[_WorkProcess] = []
            for _ in range(self.workers - len(self._processes)):
                fresh.append(self._spawn(starting=fresh))
        message = _frame(pickle.dumps((fn, ()), pickle.HIGHEST_PROTOCOL))
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


def _unwatch_on_their_loops(processes: list[_WorkProcess]) -> None:
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

        def unwatch_all(watched: list[_WorkProcess] = watched, done: threading.Event = done) -> None:
            for process in watched:
                process.unwatch()
            done.set()

        try:
            loop.call_soon_threadsafe(unwatch_all)
        except RuntimeError:  # the loop closed meanwhile: nothing watches any more
            continue
        done.wait(5)


@dataclass(eq=False)
class _Job:
    message: bytes
    outcome: asyncio.Future[Any]
    idempotent: bool
    sent: bool = False  # handed to a process: it will run whatever happens to the waiter


class _ProcessLost(Exception):
    """The work process died before it answered."""


class _RemoteTraceback(Exception):
    """The traceback of an unexpected error in a work process, as its __cause__."""

    def __str__(self) -> str:
        return str(self.args[0])


_HEADER = struct.Struct("!Q")


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def _take_frame(received: bytearray) -> bytes | None:
    """The first whole message in `received`, taken out of it; None until one has come."""
    if len(received) < _HEADER.size:
        return None
    end = _HEADER.size + _HEADER.unpack_from(received)[0]
    if len(received) < end:
        return None
    message = bytes(received[_HEADER.size:end])
    del received[:end]
    return message


@dataclass(eq=False)
class _WorkProcess:
    """One work process, the parent's ends of its two pipes (non-blocking) and the jobs it
    holds, oldest first: answers come back in that order."""

    process: BaseProcess
    jobs: Connection  # write end: jobs go in
    answers: Connection  # read end: answers come out
    pool: WorkPool
    loop: asyncio.AbstractEventLoop | None = None  # the loop watching its pipes while it holds jobs
    held: collections.deque[_Job] = field(default_factory=collections.deque)
    core: int | None = None  # the core it runs on, when pinned
    _unwritten: collections.deque[memoryview] = field(default_factory=collections.deque)
    _received: bytearray = field(default_factory=bytearray)
    _reading: bool = False  # the loop watches the answer pipe
    _writing: bool = False  # the loop watches the job pipe (a job larger than the pipe)

    @classmethod
    def spawn(cls, context: Any, initializer: Callable[..., None] | None,
              initargs: tuple[Any, ...], admitted: Any, pool: WorkPool, core: int | None) -> _WorkProcess:
        job_read, job_write = context.Pipe(duplex=False)
        answer_read, answer_write = context.Pipe(duplex=False)
        for connection in (job_write, answer_write):
            _widen(connection.fileno())
        process = context.Process(target=_serve, args=(job_read, answer_write, initializer, initargs, admitted, core),
                                  daemon=True, name="facefuse-work")
        process.start()
        job_read.close()  # the child holds its own copies: the pipes end when the child does
        answer_write.close()
        os.set_blocking(job_write.fileno(), False)
        os.set_blocking(answer_read.fileno(), False)
        return cls(process, job_write, answer_read, pool, core=core)

    def alive(self) -> bool:
        return not self.jobs.closed and self.process.exitcode is None

    def usable(self) -> bool:
        """Alive, and not holding jobs of an event loop that has closed (tests run one loop
        per call; a closed loop never reads their answers): such a process is stopped."""
        if self.alive() and not (self.held and self.loop is not None and self.loop.is_closed()):
            return True
        self.fail()  # its jobs are lost now, not when the end of its pipe is read
        return False

    def can_take(self, loop: asyncio.AbstractEventLoop, depth: int) -> bool:
        """Holds `depth` jobs, of this loop (answers are read by the loop of the jobs)."""
        return len(self.held) == depth and (not self.held or self.loop is loop)

    def give(self, loop: asyncio.AbstractEventLoop, job: _Job) -> bool:
        """Queue the job in the process's pipe and watch for its answer; False if the
        process is gone."""
        if not self.held:
            self.loop = loop
            self._received.clear()
            loop.add_reader(self.answers.fileno(), self._on_readable)
            self._reading = True
        self.held.append(job)
        job.sent = True
        self._unwritten.append(memoryview(job.message))
        if not self._write_some():
            self.held.pop()
            job.sent = False
            return False
        if self._unwritten and not self._writing:
            loop.add_writer(self.jobs.fileno(), self._on_writable)
            self._writing = True
        return True

    def _write_some(self) -> bool:
        """Write what the pipe takes now; False if the process is gone."""
        while self._unwritten:
            view = self._unwritten[0]
            try:
                written = os.write(self.jobs.fileno(), view)
            except BlockingIOError:
                return True
            except OSError:  # EPIPE: nobody reads any more
                return False
            if written < len(view):
                self._unwritten[0] = view[written:]
                return True
            self._unwritten.popleft()
        return True

    def _on_writable(self) -> None:
        assert self.loop is not None
        if not self._write_some():
            self._die()
        elif not self._unwritten:
            self.loop.remove_writer(self.jobs.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        while self.held:
            try:
                chunk = os.read(self.answers.fileno(), PIPE_BYTES + _HEADER.size)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # end of file: the process died
                return self._die()
            if not self._received and len(chunk) >= _HEADER.size \
                    and len(chunk) == _HEADER.size + _HEADER.unpack_from(chunk)[0]:
                self._answer(memoryview(chunk)[_HEADER.size:])  # the usual case: no copy
                continue
            self._received += chunk
            while (answer := _take_frame(self._received)) is not None:
                self._answer(memoryview(answer))

    def _answer(self, answer: memoryview) -> None:
        job = self.held.popleft()
        try:
            ok, value, remote = pickle.loads(answer)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception class that needs arguments
            ok, value, remote = False, exc, None
        if not job.outcome.done():
            if ok:
                job.outcome.set_result(value)
            else:
                if remote:
                    value.__cause__ = _RemoteTraceback(remote)
                job.outcome.set_exception(value)
        assert self.loop is not None
        loop = self.loop
        if not self.held:
            loop.remove_reader(self.answers.fileno())
            self._reading = False
        self.pool._redispatch(loop)

    def _die(self) -> None:
        """The process is gone: every job it held is lost; the pool replaces it."""
        assert self.loop is not None
        loop = self.loop
        self.fail()
        self.pool._redispatch(loop)

    def fail(self) -> None:
        """Stop the process; every job it held is lost (told to waiters whose loop runs)."""
        self.kill()
        while self.held:
            job = self.held.popleft()
            if not job.outcome.done() and not job.outcome.get_loop().is_closed():
                job.outcome.set_exception(_ProcessLost())

    def send_blocking(self, message: bytes) -> None:
        view = memoryview(message)
        while view:
            select.select([], [self.jobs.fileno()], [], 60)
            try:
                view = view[os.write(self.jobs.fileno(), view):]
            except BlockingIOError:
                continue

    def receive_blocking(self, timeout: float) -> bytes:
        received, deadline = bytearray(), time.monotonic() + timeout
        while (message := _take_frame(received)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("a work process did not start in time")
            if select.select([self.answers.fileno()], [], [], left)[0]:
                chunk = os.read(self.answers.fileno(), PIPE_BYTES)
                if not chunk:
                    raise RuntimeError("a work process stopped while starting")
                received += chunk
        return message

    def unwatch(self) -> None:
        """The loop stops watching the pipes (call on the loop's thread)."""
        if self.loop is not None and not self.loop.is_closed():
            if self._reading:
                self.loop.remove_reader(self.answers.fileno())
            if self._writing:
                self.loop.remove_writer(self.jobs.fileno())
        self._reading = self._writing = False
        self._unwritten.clear()

    def stop_taking_jobs(self) -> None:
        """Close the job pipe: the process leaves once its current job is done."""
        if not self.jobs.closed:
            self.jobs.close()

    def kill(self) -> None:
        """Stop the process (if it still runs) and close the pipes."""
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(5)
        self.unwatch()
        self.stop_taking_jobs()
        if not self.answers.closed:
            self.answers.close()


def _serve(jobs: Connection, answers: Connection, initializer: Callable[..., None] | None,
           initargs: tuple[Any, ...], admitted: Any = None, core: int | None = None) -> None:
    """A work process: run jobs one at a time until the job pipe closes."""
    global _pool_admitted, _pool_cores
    _pool_admitted, _pool_cores = admitted, usable_cores()
    if core is not None:  # before any model starts its threads: they inherit it
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})
    if initializer is not None:
        initializer(*initargs)
    job_fd, answer_fd = jobs.fileno(), answers.fileno()
    while True:
        header = _read_exactly(job_fd, _HEADER.size)
        if header is None:
            return
        payload = _read_exactly(job_fd, _HEADER.unpack(header)[0])
        if payload is None:
            return
        fn, args = pickle.loads(payload)
        del payload
        try:
            outcome: tuple[bool, Any, str | None] = (True, fn(*args), None)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            remote = None if isinstance(exc, FacefuseError) else traceback.format_exc()
            outcome = (False, exc, remote)
        try:
            message = _frame(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # an answer that cannot cross the pipe
            message = _frame(pickle.dumps((False, RuntimeError(f"unpicklable answer: {exc!r}"),
                                           traceback.format_exc()), pickle.HIGHEST_PROTOCOL))
        del outcome
        view = memoryview(message)
        while view:
            view = view[os.write(answer_fd, view):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    """size bytes from a blocking fd, or None at end of file."""
    if size == 0:
        return b""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, PIPE_BYTES))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _widen(fd: int) -> None:
    """Let a whole job or answer fit in a pipe (Linux: 64 KB by default): without it a 0.5 MB
    answer crossed in 64 KB turns, each waiting for the other process to be scheduled."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def spare_core() -> bool:
    """In a work process: whether a job may take a second core, the pool's jobs (running or
    waiting) being at most half as many as the cores (each job then has one to itself and one
    to share). A lone request's job takes the idle one; under load no job does."""
    return _pool_admitted is not None and 2 * _pool_admitted.value <= len(_pool_cores)


def pool_cores() -> set[int]:
    """In a work process: the cores the pool runs on (this process may be pinned to one)."""
    return set(_pool_cores)


def usable_cores() -> set[int]:
    """The CPUs this process may run on (Linux), else none known."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set()


def _busy() -> FacefuseError:
    return FacefuseError(Err.SERVER_BUSY, "the work queue is full; retry in a moment")
