"""PostgreSQL: the rows every node of a cluster shares (FACEFUSE_DATABASE_URL=postgresql://...).

Driver: psycopg 3, directly. The stores' SQL is already plain and portable, so a query
builder (SQLAlchemy Core) would add a layer of statement compilation to every request
while changing no statement; psycopg prepares a statement on the server after a few uses
and answers rows without it.

Connections: one per thread of each process, opened on first use, in autocommit (a read
holds no snapshot after it answers); `transaction()` opens a transaction or, nested, a
savepoint. Row names and indexes both read (`_Row`), and `?` parameters become psycopg's
`%s`, so the stores' SQL reads the same as for SQLite.

Outage: a refused or lost connection, a server shutting down or a statement past
STATEMENT_TIMEOUT_MS drops the thread's connection and answers SERVER_BUSY at once
(storage.database.database_unavailable); the next statement connects again, so service
resumes by itself when the server is back. A connection kept from before a restart fails
on its first use: a read, or a BEGIN, that fails so is sent once more on a new connection
(nothing ran yet), so the first requests after a restart are answered, not refused.
A server that does not answer at all (a partition) makes a call wait out a timeout; the
first such failure opens the process's breaker (storage/breaker.py), and every call then
answers SERVER_BUSY at once until a background probe connects again.

Schema: the table schema_version holds the version; migrations (storage/schema.py) run
under an advisory lock, so nodes starting together migrate once.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg

from facefuse.storage.breaker import ConnectionBreaker
from facefuse.storage.database import database_unavailable
from facefuse.storage.schema import POSTGRES_MIGRATIONS, SCHEMA_VERSION, SchemaTooNewError

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 10_000  # a statement (lock waits included) that takes longer means trouble
# A server that vanished without closing the connection (a network partition, a power cut)
# is noticed by TCP itself: data unacknowledged this long fails the call, and an idle
# connection is probed, instead of waiting out the kernel's retransmissions for minutes.
TCP_USER_TIMEOUT_MS = 5_000
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_PROBES = 10, 5, 3
SCHEMA_LOCK = "facefuse:schema"
# Connection failures of every kind; psycopg's other errors (a broken constraint) are the caller's.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


class _Row:
    """A row that reads by column index or column name, as sqlite3.Row does."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], _Row]:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return functools.partial(_Row, names=names)


@functools.lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    """The stores' `?` parameters as psycopg's `%s` (their SQL holds no other ? or %)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection that takes the stores' SQL text."""

    def __init__(self, raw: psycopg.Connection[Any], pid: int) -> None:
        self.raw = raw
        self.pid = pid

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self.raw.execute(_pg_sql(sql), parameters)


class PostgresDatabase:
    """One PostgreSQL database; a connection per thread (and per process), schema migrated on open."""

    kind = "postgresql"

    def __init__(
        self, url: str, synchronous: bool = True, migrate: bool = True, breaker: ConnectionBreaker | None = None
    ) -> None:
        self.url = url
        self.synchronous = synchronous
        self._local = threading.local()
        self._all: list[_Connection] = []
        self._all_lock = threading.Lock()
        self._owns_breaker = breaker is None
        self.breaker = breaker or ConnectionBreaker(self.connects)
        if migrate:
            self._migrate()

    # ------------------------------------------------------------ connections

    def connection(self) -> _Connection:
        """This thread's connection, opened again after it broke or in a new process."""
        if self.breaker.is_open:
            raise database_unavailable()
        try:
            return self._thread_connection()
        except CONNECTION_ERRORS as error:
            raise database_unavailable() from error

    def _thread_connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed or conn.pid != os.getpid():
            conn = _Connection(self._connect(), os.getpid())
            self._local.conn = conn
            with self._all_lock:
                self._all = [c for c in self._all if not c.raw.closed]
                self._all.append(conn)
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        if not self.synchronous:
            # Counters only: a commit returns before its WAL is flushed; a server crash can
            # forget the last moment's counts, which only lets a key spend them again.
            options += " -c synchronous_commit=off"
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE_SECONDS,
            keepalives_interval=KEEPALIVE_INTERVAL_SECONDS,
            keepalives_count=KEEPALIVE_PROBES,
            options=options,
            row_factory=_row_factory,
        )

    def connects(self) -> bool:
        """The breaker's probe: does a new connection work?"""
        try:
            self._connect().close()
            return True
        except CONNECTION_ERRORS:
            return False

    def _drop(self) -> None:
        conn: _Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.raw.close()

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """SERVER_BUSY at once while the breaker is open; a connection error drops this
        thread's connection, answers SERVER_BUSY and, if the call waited for it, opens the breaker."""
        if self.breaker.is_open:
            raise database_unavailable()
        started = self.breaker.clock()
        try:
            yield
        except CONNECTION_ERRORS as error:
            self._drop()
            if error.sqlstate is None:  # no answer from the server (an error it sent shows it is there)
                self.breaker.failed(started)
            raise database_unavailable() from error

    def close(self) -> None:
        """Close every connection this object opened (at shutdown, when no thread uses them)."""
        if self._owns_breaker:
            self.breaker.close()
        with self._all_lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.raw.close()
        self._local = threading.local()

    def counters(self) -> PostgresDatabase:
        """The same server, so the same breaker: one partition refuses both at once."""
        return PostgresDatabase(self.url, synchronous=False, migrate=False, breaker=self.breaker)

    # ------------------------------------------------------------ statements

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[_Connection]:
        """A transaction (a savepoint when nested); with `lock`, that name is ours until it ends."""
        with self._answering(), ExitStack() as stack:
            conn = self._begin(stack)
            if lock is not None:
                conn.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            yield conn

    def _begin(self, stack: ExitStack) -> _Connection:
        """Begin on this thread's connection; a BEGIN that fails on a connection kept from
        before (the server restarted since) is sent once more on a new one: nothing ran yet."""
        kept = getattr(self._local, "conn", None) is not None
        conn = self._thread_connection()
        try:
            stack.enter_context(conn.raw.transaction())
            return conn
        except CONNECTION_ERRORS:
            self._drop()
            if not kept:
                raise
        conn = self._thread_connection()
        stack.enter_context(conn.raw.transaction())
        return conn

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        return self._read(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        return self._read(sql, params).fetchone()

    def _read(self, sql: str, params: tuple[object, ...]) -> psycopg.Cursor[Any]:
        """A read on this thread's connection; one that fails on a connection kept from before
        (the server restarted since) is tried once more on a new one, so the first request
        after a restart is answered rather than refused."""
        with self._answering():
            kept = getattr(self._local, "conn", None) is not None
            try:
                return self._thread_connection().execute(sql, params)
            except CONNECTION_ERRORS:
                self._drop()
                if not kept:
                    raise
            return self._thread_connection().execute(sql, params)

    def scalar(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.query_one(sql, params)
        return row[0] if row is not None else None

    def ping(self) -> None:
        self.query_one("SELECT 1")

    @property
    def schema_version(self) -> int:
        return int(self.scalar("SELECT version FROM schema_version"))

    # ------------------------------------------------------------ schema

    def _migrate(self) -> None:
        with self.transaction(lock=SCHEMA_LOCK) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = int(row[0]) if row is not None and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"the database has schema version {version}; this facefuse knows up to {SCHEMA_VERSION}"
                )
            if version == SCHEMA_VERSION:
                return
            for statements in POSTGRES_MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
