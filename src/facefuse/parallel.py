"""A spare core for a lone job: pieces of one fusion run on a helper thread meanwhile.

A work process runs one job at a time, each on a core of its own under load. A lone
request (nothing else running or waiting) would leave the other cores idle, so its job
hands independent pieces to the process's one helper thread: `start` runs the piece there
when `spare()` says so, else at once on the calling thread. Results never depend on which:
the pieces are pure functions of their arguments (OpenCV and numpy release the GIL while
they work). Outside a work process nothing is spare unless `use_spare_cores` says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

_spare: Callable[[], bool] = lambda: False  # noqa: E731 - replaced by use_spare_cores
_cores: set[int] = set()
_helper: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()


class _ThreadFlag(threading.local):
    active = False  # per thread: True on the helper


_on_helper = _ThreadFlag()


def use_spare_cores(spare: Callable[[], bool], cores: set[int] | None = None) -> None:
    """From now on hand pieces to the helper thread whenever `spare()` is true (asked once
    per piece); the helper may run on `cores` (a process pinned to one core passes the
    cores it could use before, so the helper reaches an idle one)."""
    global _spare, _cores
    _spare, _cores = spare, set(cores or ())


def start(fn: Callable[..., T], *args: object) -> Pending[T]:
    """fn(*args) on the helper thread when a core is spare, else now; `.result()` gives it.
    A piece may start others (on the helper they queue behind it) but not wait for them."""
    if _spare():
        return Pending(_ready_helper().submit(fn, *args))
    done: Future[T] = Future()
    try:
        done.set_result(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - raised again by result(), as from the helper
        done.set_exception(exc)
    return Pending(done)


def in_halves(fn: Callable[[slice], object], length: int) -> None:
    """fn(first half of range(length)) on a spare core while fn(second half) runs here (as
    two slices); fn writes its results itself, so each half must stand on its own."""
    middle = length // 2
    first = start(fn, slice(0, middle))
    fn(slice(middle, length))
    first.result()


class Pending(Generic[T]):
    """A piece started by `start`."""

    def __init__(self, future: Future[T]) -> None:
        self._future = future

    def result(self) -> T:
        if _on_helper.active and not self._future.done():
            raise RuntimeError("a piece on the helper thread waited for one queued behind it")
        return self._future.result()


def _ready_helper() -> ThreadPoolExecutor:
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = ThreadPoolExecutor(1, thread_name_prefix="facefuse-spare", initializer=_on_spare_cores)
        return _helper


def _on_spare_cores() -> None:
    _on_helper.active = True
    if _cores and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, _cores)
