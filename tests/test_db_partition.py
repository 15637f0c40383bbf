"""A node whose PostgreSQL stops answering without refusing (a network partition) keeps its
event loop free and answers SERVER_BUSY at once: a TCP forwarder of the test's own stands
between the node and PostgreSQL and, when told, holds every byte the node sends instead of
passing it on, so a call on an open connection waits for as long as the partition lasts
and a new connection waits out its connect timeout. The first such failure opens the
process's breaker (storage/breaker.py); later calls reach no server until a probe connects.

Every outcome is decided by events (bytes held and connections counted by the forwarder,
answers received, the breaker's state), not by time; the clients' timeout is only a guard
against a hang.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import components
import httpx
import pytest
from conftest import RunningServer, start_server, stop_server
from test_api import assert_error

from facefuse.errors import Err, FacefuseError
from facefuse.keys.store import KeyStore
from facefuse.storage.breaker import ConnectionBreaker
from facefuse.storage.postgres import PostgresDatabase

REQUEST_TIMEOUT = 60.0  # a guard against a hang, never reached by a passing run
CHUNK_BYTES = 65536

pytestmark = pytest.mark.skipif(
    components.postgres_bin() is None, reason="needs PostgreSQL's server from Debian's packages (.ci/run installs it)"
)


class PartitionProxy:
    """Forwards 127.0.0.1:port to PostgreSQL; partitioned, it accepts and acknowledges but passes nothing on."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.held = threading.Event()  # the node connected or sent something during the partition
        self.accepted = 0  # connections the node opened, partitioned or not
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def partition(self) -> None:
        self.held.clear()
        self._forwarding.clear()

    def heal(self) -> None:
        """Pass on what was held, and everything after it, as TCP does once a partition heals."""
        self._forwarding.set()

    def close(self) -> None:
        self.heal()
        for sock in [self.listener, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            except OSError:
                pass
            sock.close()

    def _accept_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._sockets.append(client)
        self.accepted += 1  # (one accepting thread)
        if not self._forwarding.is_set():
            self.held.set()
        self._forwarding.wait()  # a connection made during the partition reaches nobody until it heals
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        self._sockets.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: socket.socket, target: socket.socket, from_node: bool) -> None:
        try:
            while data := source.recv(CHUNK_BYTES):
                if from_node and not self._forwarding.is_set():
                    self.held.set()
                    self._forwarding.wait()
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # either side closed


@pytest.fixture
def proxy(postgres: components.PostgresServer) -> Iterator[PartitionProxy]:
    forwarder = PartitionProxy(postgres.port)
    yield forwarder
    forwarder.close()


def _via(proxy: PartitionProxy, postgres: components.PostgresServer) -> str:
    return postgres.create_database().replace(f":{postgres.port}/", f":{proxy.port}/")


@pytest.fixture
def node(postgres: components.PostgresServer, proxy: PartitionProxy, tmp_path: Path) -> Iterator[RunningServer]:
    env = {"FACEFUSE_DATABASE_URL": _via(proxy, postgres), "FACEFUSE_DATABASE_THREADS": "1", "FACEFUSE_WORKERS": "1"}
    server = start_server(tmp_path / "data", extra_env=env)
    yield server
    proxy.heal()  # a node stops only once its database calls can end
    stop_server(server)


def _limited_key(server: RunningServer) -> dict[str, str]:
    """A key with a qps limit and a daily quota, so a request both checks it and spends from it."""
    db = PostgresDatabase(server.env["FACEFUSE_DATABASE_URL"])  # through the proxy, which still forwards
    try:
        key, secret = KeyStore(db).create("limited", qps=1000, daily_quota=1000)
    finally:
        db.close()
    return {"api_key": key.api_key, "api_secret": secret}


def test_a_partitioned_database_leaves_the_event_loop_free_and_service_resumes_when_it_heals(
    node: RunningServer, proxy: PartitionProxy
) -> None:
    auth = _limited_key(node)
    with httpx.Client(base_url=node.base_url, timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        # The node's one database thread opens its connections before the partition.
        assert client.get("/v3/templates", params=auth).status_code == 200

        proxy.partition()
        with ThreadPoolExecutor(max_workers=1) as background:
            hanging = background.submit(client.get, "/v3/templates", params=auth)
            assert proxy.held.wait(REQUEST_TIMEOUT), "the key check never reached the database"

            # The key check waits inside PostgreSQL's call; the event loop answers meanwhile.
            assert client.get("/healthz").status_code == 200
            # The one database thread is taken: another key check waits for it a moment, then is
            # refused, not queued until the partition heals.
            assert_error(client.get("/v3/templates", params=auth), 503, 10301, "SERVER_BUSY")
            assert not hanging.done()  # the forwarder holds its bytes until the partition heals

            proxy.heal()
            assert hanging.result().status_code == 200

        answered = client.get("/v3/templates", params=auth)
        assert answered.status_code == 200, answered.text


def _busy(call: object) -> FacefuseError:
    assert callable(call)
    with pytest.raises(FacefuseError) as refused:
        call()
    assert refused.value.error is Err.SERVER_BUSY and "database" in refused.value.detail
    return refused.value


def test_a_call_that_waited_out_a_partition_opens_the_breaker_and_a_probe_closes_it(
    postgres: components.PostgresServer, proxy: PartitionProxy
) -> None:
    probe_may_run = threading.Event()
    database: list[PostgresDatabase] = []
    # The probe waits for the test's word, so every connection the forwarder counts below is a call's.
    breaker = ConnectionBreaker(lambda: probe_may_run.wait() and database[0].connects())
    db = PostgresDatabase(_via(proxy, postgres), breaker=breaker)
    database.append(db)
    keys = KeyStore(db)
    key, secret = keys.create("client")  # this thread's connection is open from here on
    try:
        proxy.partition()
        with ThreadPoolExecutor(max_workers=1) as fresh:  # a thread without a connection yet
            failed = fresh.submit(_busy, lambda: keys.verify(key.api_key, secret))
            assert proxy.held.wait(REQUEST_TIMEOUT), "the connection attempt never reached the forwarder"
            failed.result(timeout=REQUEST_TIMEOUT)  # its connect timed out: SERVER_BUSY
        assert breaker.is_open

        # Calls now reach no server: this thread's open connection would wait for the partition
        # to heal, and a new one would be counted by the forwarder.
        opened = proxy.accepted
        with ThreadPoolExecutor(max_workers=2) as threads:
            calls = [
                lambda: keys.verify(key.api_key, secret),
                db.ping,
                lambda: keys.create("during"),
                db.counters().ping,
            ]
            for refused in [threads.submit(_busy, call) for call in calls] + [threads.submit(_busy, db.ping)]:
                refused.result(timeout=REQUEST_TIMEOUT)
        for call in calls:
            _busy(call)
        assert proxy.accepted == opened and breaker.is_open

        proxy.heal()
        probe_may_run.set()
        assert breaker.closed.wait(REQUEST_TIMEOUT), "the probe never connected"
        assert keys.verify(key.api_key, secret) is not None  # service resumes by itself
        assert keys.create("after")
    finally:
        probe_may_run.set()
        breaker.close()
        db.close()


def test_a_refused_connection_leaves_the_breaker_closed_and_a_slow_one_opens_it(
    postgres: components.PostgresServer, tmp_path: Path
) -> None:
    """Refusals answer at once anyway (the first call after a restart must go through), so
    only a failure that waited opens the breaker; the clock says which, injected here."""
    url = postgres.create_database()
    nobody = f"postgresql://facefuse@127.0.0.1:{components.free_port()}/nothing"  # a closed port refuses
    for seconds_per_call, opens in ((0.0, False), (5.0, True)):
        ticks = iter(float(n) * seconds_per_call for n in range(1000))
        breaker = ConnectionBreaker(lambda: False, clock=lambda: next(ticks), probe_interval=3600)
        refused = PostgresDatabase(nobody, migrate=False, breaker=breaker)
        _busy(refused.ping)
        assert breaker.is_open is opens
        if opens:
            _busy(PostgresDatabase(url, migrate=False, breaker=breaker).ping)  # a working server, same breaker: refused
        breaker.close()
        assert PostgresDatabase(url, breaker=breaker).schema_version >= 1  # closed by hand: calls go through again


def test_a_partitioned_node_answers_busy_at_once_after_the_first_timeout_and_resumes_by_itself(
    node: RunningServer, proxy: PartitionProxy
) -> None:
    with httpx.Client(base_url=node.base_url, timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        proxy.partition()  # before the node's database thread has opened its connection
        # Its first key check connects, the forwarder holds the attempt, it times out: busy.
        assert_error(client.get("/v3/templates", params=node.auth), 503, 10301, "SERVER_BUSY")
        # Each later check would open a connection of its own and wait as long; none reaches a server.
        opened, attempts = proxy.accepted, 20
        for _ in range(attempts):
            assert_error(client.get("/v3/templates", params=node.auth), 503, 10301, "SERVER_BUSY")
        assert proxy.accepted - opened < attempts // 4  # only the node's probes, each waiting its own timeout
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503

        proxy.heal()
        answered = client.get("/v3/templates", params=node.auth)
        while answered.status_code == 503:  # until the node's probe has connected
            time.sleep(0.05)
            answered = client.get("/v3/templates", params=node.auth)
        assert answered.status_code == 200, answered.text
