"""mediapipe graphs, one per thread and kind, built and run with native stderr silenced.

mediapipe graphs are not thread-safe: each thread keeps its own (thread_cache). Their C++
start-up notices (TFLite's "Created TensorFlow Lite XNNPACK delegate", absl's W0000 lines)
go to the process's stderr past Python's logging and are not errors. They come while a
graph opens its calculators, on mediapipe's own threads after the graph's start has
returned, and the face mesh's last one on its first face: so a graph is built with a run
on a blank image, and runs until it has settled, with file descriptor 2 on /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from facefuse.arrays import UInt8Array

_local = threading.local()


def built(make: Callable[[], Any]) -> Any:
    """A new graph, made and run once on a blank image with native stderr silenced: a run
    returns when the graph is idle, so every calculator has opened (and printed) by then."""
    with _native_stderr_silenced():
        graph = make()
        graph.process(np.zeros((64, 64, 3), np.uint8))
    return graph


def run(graph: Any, image: UInt8Array, settled: Callable[[Any], bool] = lambda _: True) -> Any:
    """graph.process(image), its native stderr silenced until `settled(result)`."""
    if id(graph) in _settled_graphs:
        return graph.process(image)
    with _native_stderr_silenced():
        result = graph.process(image)
    if settled(result):
        _settled_graphs.add(id(graph))
    return result


_settled_graphs: set[int] = set()
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null meanwhile (one such window at a time)."""
    with _stderr_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def thread_cache(name: str) -> dict[int, Any]:
    cache = getattr(_local, name, None)
    if cache is None:
        cache = {}
        setattr(_local, name, cache)
    return cache
