"""PostgreSQL as the shared database: migrations under a lock, a newer schema refused, and a
server that stops and starts again (its own server here, so the others' tests go on)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import components
import pytest

from facefuse.errors import Err, FacefuseError
from facefuse.keys.store import KeyStore
from facefuse.storage.postgres import PostgresDatabase
from facefuse.storage.schema import SCHEMA_VERSION, SchemaTooNewError

pytestmark = pytest.mark.skipif(
    components.postgres_bin() is None, reason="needs PostgreSQL's server from Debian's packages (.ci/run installs it)"
)


def test_nodes_starting_together_migrate_a_new_database_once(postgres: components.PostgresServer) -> None:
    url = postgres.create_database()
    opened: list[PostgresDatabase] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresDatabase(url))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(opened) == 6
    assert [tuple(row) for row in opened[0].query("SELECT version FROM schema_version")] == [(SCHEMA_VERSION,)]
    tables = {row[0] for row in opened[0].query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"schema_version", "api_keys", "templates", "results", "key_usage"}


def test_a_database_of_a_newer_facefuse_is_refused(postgres: components.PostgresServer) -> None:
    url = postgres.create_database()
    with PostgresDatabase(url).transaction() as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNewError):
        PostgresDatabase(url)


@pytest.fixture
def own_postgres() -> Iterator[components.PostgresServer]:
    server = components.start_postgres()
    yield server
    server.remove()


def test_while_the_server_is_down_every_call_answers_busy_and_after_it_the_first_ones_work(
    own_postgres: components.PostgresServer,
) -> None:
    db = PostgresDatabase(own_postgres.create_database())
    keys = KeyStore(db)
    key, secret = keys.create("client")
    assert keys.verify(key.api_key, secret) is not None  # this thread's connection is open now
    own_postgres.stop("fast")
    for call in (lambda: keys.verify(key.api_key, secret), lambda: keys.create("during"), db.ping):
        with pytest.raises(FacefuseError) as refused:
            call()
        assert refused.value.error is Err.SERVER_BUSY and "database" in refused.value.detail
    own_postgres.start()
    assert keys.verify(key.api_key, secret) is not None  # the very first read after the restart
    assert keys.create("after")  # and the first write


def test_a_connection_kept_across_a_restart_is_replaced_before_its_first_use(
    own_postgres: components.PostgresServer,
) -> None:
    db = PostgresDatabase(own_postgres.create_database())
    keys = KeyStore(db)
    key, secret = keys.create("client")
    old = db.connection()
    own_postgres.stop("fast")
    own_postgres.start()  # the kept connection is dead, and nothing has used it since
    with db.transaction() as conn:  # a write first: its BEGIN goes out on a new connection
        conn.execute("INSERT INTO results VALUES ('after-restart', 1, 2)")
    assert db.connection() is not old
    own_postgres.stop("fast")
    own_postgres.start()
    assert keys.verify(key.api_key, secret) is not None  # a read first
