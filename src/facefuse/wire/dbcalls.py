"""Where the HTTP process runs the database work of every request (key checks, usage limits).

Embedded SQLite answers from a local file in microseconds, so its calls run on the event
loop: a thread hop would cost more than the call. PostgreSQL is across a network: a
server that stops answering without refusing (a partition) holds a call for its connect
or TCP timeout, and on the event loop that would stall every request of the node,
`/healthz` included. So its calls run on a few dedicated threads (each keeps its own
connections, storage/postgres.py), and a call that finds them all busy answers
SERVER_BUSY at once instead of queueing behind a database that does not answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from facefuse.errors import Err, FacefuseError
from facefuse.storage.database import Database

T = TypeVar("T")
THREAD_NAME_PREFIX = "facefuse-db"


class DatabaseCalls:
    """Runs a request's database calls: inline for SQLite, on `threads` threads for PostgreSQL."""

    def __init__(self, db: Database, threads: int) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._free = threading.BoundedSemaphore(threads)
        if db.kind != "sqlite":
            self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=THREAD_NAME_PREFIX)

    async def run(self, call: Callable[[], T]) -> T:
        """call(), off the event loop when the database is remote; SERVER_BUSY when every thread is taken."""
        if self._executor is None:
            return call()
        if not self._free.acquire(blocking=False):
            raise FacefuseError(Err.SERVER_BUSY, "the database is not answering quickly enough; try again shortly")
        # The slot is released when the call ends, not when its request is cancelled:
        # a thread stuck in the database stays counted.
        context = contextvars.copy_context()  # the request id, for the call's log lines

        def bounded() -> T:
            try:
                return context.run(call)
            finally:
                self._free.release()

        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, bounded)
        except BaseException:
            self._free.release()
            raise
        return await future

    def close(self) -> None:
        """Stop taking calls; a call stuck in the database is not waited for."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
