"""The SQLite database: one file shared by every worker process, the CLI and their threads.

Durability: WAL journal with synchronous=FULL. A commit returns only after the WAL
is fsynced, so a committed row survives kill -9 of the process *and* a power loss or
OS crash. (WAL with NORMAL would survive kill -9 too but could lose the last commits
on an OS crash; that would lose keys whose secret was already shown once.) Writes
are rare here (keys, templates, result links), so the one fsync per commit is cheap
next to a fusion. The one exception is the per-key usage counters (keys/limits.py), written
on every request of a limited key through a second Database with synchronous=NORMAL:
still safe against kill -9, and an OS crash can at worst forget the last few counts.

Concurrency: each thread of each process gets its own connection; writers take the
lock up front (BEGIN IMMEDIATE) and wait up to busy_timeout for it; WAL lets readers
go on while one process writes. This holds for processes on one host (WAL needs
shared memory: not for network file systems).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facefuse.storage.schema import SCHEMA_VERSION, SQLITE_MIGRATIONS, SchemaTooNewError

BUSY_TIMEOUT_MS = 10_000


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the C type cannot)."""


class SqliteDatabase:
    """One SQLite file; a connection per thread (and per process), schema migrated on open."""

    kind = "sqlite"

    def __init__(self, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._local = threading.local()
        # Weak: a thread's connection closes when the thread ends and its thread-local goes.
        self._all: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate(self.connection())

    # ------------------------------------------------------------ connections

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: SQLite handles must not cross it)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._open()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit BEGINs; transaction() says when a write starts.
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        self._enable_wal(conn)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment alone with the file; first opens may race.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {self.path} (journal_mode={mode})")

    def close(self) -> None:
        """Close every connection this object opened (at shutdown, when no thread uses them)."""
        with self._all_lock:
            connections, self._all = list(self._all), weakref.WeakSet()
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ statements

    def counters(self) -> SqliteDatabase:
        """The same file through connections that skip the fsync per commit (keys/limits.py)."""
        return SqliteDatabase(self.path, busy_timeout_ms=self.busy_timeout_ms, synchronous="NORMAL")

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database write lock from the start; nests as a savepoint.

        `lock` names what the transaction must have to itself (storage.database); the write
        lock, held from the start, already covers every name."""
        conn = self.connection()
        if conn.in_transaction:
            with self._savepoint(conn):
                yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        name = f"sp_{threading.get_ident()}_{time.monotonic_ns()}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Row | None:
        cursor = self.connection().execute(sql, params)
        try:
            row: sqlite3.Row | None = cursor.fetchone()
            return row
        finally:
            cursor.close()  # ends the statement, so no read snapshot lingers

    def scalar(self, sql: str, params: tuple[object, ...] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.query_one(sql, params)
        return row[0] if row is not None else None

    def ping(self) -> None:
        """Raise if the database does not answer."""
        self.query_one("SELECT 1")

    @property
    def schema_version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))

    # ------------------------------------------------------------ schema

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if self._read_version(conn) == SCHEMA_VERSION:
            return
        with self.transaction():
            version = self._read_version(conn)  # again, under the lock: another process may have won
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.path} has schema version {version}; this facefuse knows up to {SCHEMA_VERSION}"
                )
            for statements in SQLITE_MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
