"""Where the HTTP process runs the database work of every request (key checks, usage limits).

Embedded SQLite answers from a local file in microseconds, so its calls run on the event
loop: a thread hop would cost more than the call. PostgreSQL is across a network: a
server that stops answering without refusing (a partition) holds a call for its connect
or TCP timeout, and on the event loop that would stall every request of the node,
`/healthz` included. So its calls run on a few dedicated threads (each keeps its own
connections, storage/postgres.py). A call that finds them all busy waits for one up to
THREAD_WAIT_SECONDS, in which a database that answers frees a thread many times over,
then answers SERVER_BUSY instead of queueing behind a database that does not answer
(whose later calls the breaker of storage/breaker.py refuses at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facefuse.errors import Err, FacefuseError
from facefuse.storage.database import Database

T = TypeVar("T")
THREAD_NAME_PREFIX = "facefuse-db"
THREAD_WAIT_SECONDS = 0.25


class DatabaseCalls:
    """Runs a request's database calls: inline for SQLite, on `threads` threads for PostgreSQL."""

    def __init__(self, db: Database, threads: int, thread_wait: float = THREAD_WAIT_SECONDS) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._free = asyncio.Semaphore(threads)  # bound to the event loop that first waits on it
        self._thread_wait = thread_wait
        if db.kind != "sqlite":
            self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=THREAD_NAME_PREFIX)

    async def run(self, call: Callable[[], T]) -> T:
        """call(), off the event loop when the database is remote; SERVER_BUSY when no thread frees in time."""
        if self._executor is None:
            return call()
        if not self._free.locked():
            await self._free.acquire()  # a free thread: no wait, no timer
        else:
            try:
                await asyncio.wait_for(self._free.acquire(), self._thread_wait)
            except TimeoutError:
                raise FacefuseError(
                    Err.SERVER_BUSY, "the database is not answering quickly enough; try again shortly"
                ) from None
        # The slot is released when the call ends, not when its request is cancelled:
        # a thread stuck in the database stays counted.
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the request id, for the call's log lines

        def bounded() -> T:
            try:
                return context.run(call)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop has closed (shutdown): nobody waits
                    loop.call_soon_threadsafe(self._free.release)

        try:
            future = loop.run_in_executor(self._executor, bounded)
        except BaseException:
            self._free.release()
            raise
        return await future

    def close(self) -> None:
        """Stop taking calls; a call stuck in the database is not waited for."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
