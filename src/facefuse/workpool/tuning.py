"""How a process is set up for CPU-bound image work: native libraries on one thread, the
allocator keeping freed memory, start-up objects out of garbage collection, and CPU pinning.

The work processes are the parallelism (one per core), so nothing inside one of them
starts threads of its own to compute; docs/performance.md has the measurements behind
each setting."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 512 * 1024 * 1024
SWITCH_INTERVAL = 0.001  # s; Python's default is 0.005
SINGLE_THREAD_LIBRARIES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_libraries() -> None:
    """numpy's OpenBLAS (and OpenMP, MKL) on one thread in the processes started from now
    on, and in this one if it has not imported numpy yet (read when numpy loads). Their
    helper threads spin after every call and take a core the other work processes need."""
    for name in SINGLE_THREAD_LIBRARIES:
        os.environ.setdefault(name, "1")


def tune_allocator() -> None:
    """glibc keeps freed memory for the next request instead of handing every multi-MB
    buffer back to the kernel and faulting it in again, zeroed, on the next allocation.
    The heap then stays at the largest request's working set: flat, not growing."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "mallopt"):  # glibc; elsewhere the defaults stay
        libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)
        libc.mallopt(_M_TOP_PAD, 64 * 1024 * 1024)


def freeze_startup_objects() -> int:
    """A full collection now, then every object still alive (modules, models, the app) is
    left out of later ones; what is made afterwards is collected as usual. A full
    collection otherwise walks them all, and every request in flight waits for it.
    Returns how many objects are left out now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def tune_for_compute() -> None:
    """Settings of a work process for CPU-bound image work:

    - the allocator keeps freed memory (tune_allocator);
    - OpenCV runs each call on the calling thread: the work processes are the parallelism
      (one per core), and OpenCV's own pool would only add spinning threads;
    - a short GIL switch interval keeps the process's small helper threads responsive.
    """
    tune_allocator()
    import cv2

    cv2.setNumThreads(1)
    sys.setswitchinterval(SWITCH_INTERVAL)


def usable_cores() -> set[int]:
    """The CPUs this process may run on (Linux), else none known."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set()


def pin_to_core(core: int) -> None:
    """This process on one CPU. Call it before any library starts threads: they inherit it."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})
