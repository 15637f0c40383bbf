"""A node whose PostgreSQL stops answering without refusing (a network partition) keeps its
event loop free: a TCP forwarder of the test's own stands between the node and PostgreSQL
and, when told, holds every byte the node sends instead of passing it on, so a key check
waits inside the database call for as long as the partition lasts.

Every outcome is decided by events (bytes held by the forwarder, answers received), not by
time; the clients' timeout is only a guard against a hang.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import components
import httpx
import pytest
from conftest import RunningServer, start_server, stop_server
from test_api import assert_error

from facefuse.keys.store import KeyStore
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
        self.held = threading.Event()  # the node sent something during the partition
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


@pytest.fixture
def node(postgres: components.PostgresServer, proxy: PartitionProxy, tmp_path: Path) -> Iterator[RunningServer]:
    direct_url = postgres.create_database()
    via_proxy = direct_url.replace(f":{postgres.port}/", f":{proxy.port}/")
    env = {"FACEFUSE_DATABASE_URL": via_proxy, "FACEFUSE_DATABASE_THREADS": "1", "FACEFUSE_WORKERS": "1"}
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
            # The one database thread is taken: another key check is refused at once, not queued.
            assert_error(client.get("/v3/templates", params=auth), 503, 10301, "SERVER_BUSY")
            assert not hanging.done()  # the forwarder holds its bytes until the partition heals

            proxy.heal()
            assert hanging.result().status_code == 200

        answered = client.get("/v3/templates", params=auth)
        assert answered.status_code == 200, answered.text
