"""One work process, both sides: `WorkProcess` is the HTTP process's handle on it (its pipes,
read and written by the event loop without blocking, and the jobs it holds); `serve` is
what the process itself runs, one job at a time until its job pipe closes."""

from __future__ import annotations

import asyncio
import collections
import os
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from facefuse.errors import FacefuseError
from facefuse.workpool import framing
from facefuse.workpool.load import PoolLoad
from facefuse.workpool.tuning import pin_to_core


@dataclass(eq=False)
class Job:
    message: bytes  # framed (fn, args)
    outcome: asyncio.Future[Any]
    idempotent: bool
    sent: bool = False  # handed to a process: it will run whatever happens to the waiter


class ProcessLost(Exception):
    """The work process died before it answered."""


class RemoteTraceback(Exception):
    """The traceback of an unexpected error in a work process, as its __cause__."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(eq=False)
class WorkProcess:
    """One work process, the parent's ends of its two pipes (non-blocking) and the jobs it
    holds, oldest first: answers come back in that order. `on_change(loop)` is called on
    the event loop whenever it answers a job or dies (the pool may then move jobs)."""

    process: BaseProcess
    jobs: Connection  # write end: jobs go in
    answers: Connection  # read end: answers come out
    on_change: Callable[[asyncio.AbstractEventLoop], None]
    loop: asyncio.AbstractEventLoop | None = None  # the loop watching its pipes while it holds jobs
    held: collections.deque[Job] = field(default_factory=collections.deque)
    core: int | None = None  # the core it runs on, when pinned
    _unwritten: collections.deque[memoryview] = field(default_factory=collections.deque)
    _received: bytearray = field(default_factory=bytearray)
    _reading: bool = False  # the loop watches the answer pipe
    _writing: bool = False  # the loop watches the job pipe (a job larger than the pipe)

    @classmethod
    def spawn(
        cls,
        context: Any,
        initializer: Callable[..., None] | None,
        initargs: tuple[Any, ...],
        load: PoolLoad,
        on_change: Callable[[asyncio.AbstractEventLoop], None],
        core: int | None,
    ) -> WorkProcess:
        job_read, job_write = context.Pipe(duplex=False)
        answer_read, answer_write = context.Pipe(duplex=False)
        for connection in (job_write, answer_write):
            framing.widen(connection.fileno())
        process = context.Process(
            target=serve,
            args=(job_read, answer_write, initializer, initargs, load, core),
            daemon=True,
            name="facefuse-work",
        )
        process.start()
        job_read.close()  # the child holds its own copies: the pipes end when the child does
        answer_write.close()
        os.set_blocking(job_write.fileno(), False)
        os.set_blocking(answer_read.fileno(), False)
        return cls(process, job_write, answer_read, on_change, core=core)

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

    def give(self, loop: asyncio.AbstractEventLoop, job: Job) -> bool:
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
                chunk = os.read(self.answers.fileno(), framing.PIPE_BYTES + framing.HEADER.size)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # end of file: the process died
                return self._die()
            if not self._received and framing.whole_frame(chunk):
                self._answer(memoryview(chunk)[framing.HEADER.size :])  # the usual case: no copy
                continue
            self._received += chunk
            while (answer := framing.take_frame(self._received)) is not None:
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
                    value.__cause__ = RemoteTraceback(remote)
                job.outcome.set_exception(value)
        assert self.loop is not None
        loop = self.loop
        if not self.held:
            loop.remove_reader(self.answers.fileno())
            self._reading = False
        self.on_change(loop)

    def _die(self) -> None:
        """The process is gone: every job it held is lost; the pool replaces it."""
        assert self.loop is not None
        loop = self.loop
        self.fail()
        self.on_change(loop)

    def fail(self) -> None:
        """Stop the process; every job it held is lost (told to waiters whose loop runs)."""
        self.kill()
        while self.held:
            job = self.held.popleft()
            if not job.outcome.done() and not job.outcome.get_loop().is_closed():
                job.outcome.set_exception(ProcessLost())

    def send_blocking(self, message: bytes) -> None:
        framing.send_waiting(self.jobs.fileno(), message)

    def receive_blocking(self, timeout: float) -> bytes:
        return framing.receive_waiting(self.answers.fileno(), timeout)

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


def serve(
    jobs: Connection,
    answers: Connection,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    load: PoolLoad,
    core: int | None = None,
) -> None:
    """A work process: run jobs one at a time until the job pipe closes. The initializer
    gets the pool's load as the keyword `load` after `initargs`."""
    if core is not None:  # before any model starts its threads: they inherit it
        pin_to_core(core)
    if initializer is not None:
        initializer(*initargs, load=load)
    job_fd, answer_fd = jobs.fileno(), answers.fileno()
    while (payload := framing.read_frame(job_fd)) is not None:
        fn, args = pickle.loads(payload)
        del payload
        try:
            outcome: tuple[bool, Any, str | None] = (True, fn(*args), None)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            remote = None if isinstance(exc, FacefuseError) else traceback.format_exc()
            outcome = (False, exc, remote)
        try:
            message = framing.frame(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # an answer that cannot cross the pipe
            message = framing.frame(
                pickle.dumps(
                    (False, RuntimeError(f"unpicklable answer: {exc!r}"), traceback.format_exc()),
                    pickle.HIGHEST_PROTOCOL,
                )
            )
        del outcome
        framing.write_all(answer_fd, message)
