"""A circuit breaker for a database across the network: once it stops answering, say so at once.

A server that is unreachable without refusing (a network partition, a host gone) makes
every call wait out a connect or TCP timeout before it fails. The first call that fails
so opens the breaker: from then on every call of the process fails at once, without
touching the network, while one background thread tries to connect every
PROBE_INTERVAL_SECONDS; its first success closes the breaker, so service resumes by itself.

Only a failure that waited opens it (SLOW_FAILURE_SECONDS): a refused connection or a
server shutting down answers at once anyway, and the first call after such a server is
back must go through, not wait for a probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SLOW_FAILURE_SECONDS = 1.0  # below every connect and TCP timeout, above a refusal on any network
PROBE_INTERVAL_SECONDS = 1.0


class ConnectionBreaker:
    """Closed: calls go through. Open: `closed` is clear, calls fail at once, a thread probes."""

    def __init__(
        self,
        probe: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        slow_seconds: float = SLOW_FAILURE_SECONDS,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
    ) -> None:
        self._probe = probe  # True once a new connection to the server works
        self.clock = clock
        self.slow_seconds = slow_seconds
        self.probe_interval = probe_interval
        self.closed = threading.Event()  # set while calls go through; tests wait on it
        self.closed.set()
        self._lock = threading.Lock()
        self._prober: threading.Thread | None = None
        self._stop = threading.Event()  # the running probe's

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    def failed(self, started: float) -> None:
        """A call that began at `started` (this breaker's clock) lost its connection or found none."""
        if self.clock() - started < self.slow_seconds:
            return
        with self._lock:
            self.closed.clear()
            if self._prober is None or not self._prober.is_alive():  # (a thread does not survive a fork)
                self._stop = threading.Event()
                self._prober = threading.Thread(
                    target=self._probe_until_connected, args=(self._stop,), name="facefuse-db-probe", daemon=True
                )
                self._prober.start()

    def close(self) -> None:
        """Stop probing; calls go through again (and open it again if the server is still gone)."""
        with self._lock:
            self._stop.set()
            self._prober = None
            self.closed.set()

    def _probe_until_connected(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self._probe():
                with self._lock:  # a failure reported from now on starts a new probe
                    if not stop.is_set():
                        self.closed.set()
                        self._prober = None
                return
            stop.wait(self.probe_interval)
