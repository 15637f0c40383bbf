"""The one storage interface for rows: a `Database`, SQLite (embedded) or PostgreSQL (scaled).

Keys, template records, usage counters and result records live in one database; the
stores (keys/, templates/, storage/results.py) speak only this interface and one SQL text
that both databases read: `?` parameters, `INSERT ... ON CONFLICT`, `DELETE ... RETURNING`
and `ORDER BY rowid` (storage/schema.py says how PostgreSQL has a rowid).

Which one: FACEFUSE_DATABASE_URL empty is the SQLite file in the data dir (storage/db.py);
postgresql://user:password@host:port/db is PostgreSQL (storage/postgres.py, the `scale`
extra), which every node of a cluster shares.

Locks: `transaction(lock=name)` has `name` to itself until it commits. SQLite's write
lock already covers every name; PostgreSQL takes an advisory lock on it, so transactions
of other names and of no name go on beside it (a key's usage counter locks only that key).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from facefuse.errors import Err, FacefuseError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """What a statement answers; a row reads by column index or by column name."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...


class Database(Protocol):
    """A connection per thread of each process; the schema migrated when it opens."""

    kind: str  # "sqlite" or "postgresql"

    def connection(self) -> Connection: ...

    def transaction(self, lock: str | None = None) -> AbstractContextManager[Connection]:
        """Statements that commit together or not at all; nests as a savepoint."""
        ...

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]: ...

    def query_one(self, sql: str, params: tuple[object, ...] = ()) -> Any: ...

    def scalar(self, sql: str, params: tuple[object, ...] = ()) -> Any: ...

    def ping(self) -> None:
        """Raise if the database does not answer."""
        ...

    @property
    def schema_version(self) -> int: ...

    def counters(self) -> Database:
        """The same database for per-request counters, whose commits may skip the flush to disk."""
        ...

    def close(self) -> None: ...


def database_unavailable() -> FacefuseError:
    """What a request answers while the database does not: busy, try again (never a 500)."""
    return FacefuseError(Err.SERVER_BUSY, "the database is not answering; try again shortly")


def is_postgres_url(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_database(url: str, sqlite_path: Path) -> Database:
    """The database `url` names: empty for the SQLite file at sqlite_path, else PostgreSQL."""
    if not url:
        from facefuse.storage.db import SqliteDatabase

        return SqliteDatabase(sqlite_path)
    if is_postgres_url(url):
        try:
            from facefuse.storage.postgres import PostgresDatabase  # the `scale` extra: imported only here
        except ImportError as error:
            raise ImportError(
                "a postgresql:// database needs the scale extra: pip install 'facefuse[scale]'"
            ) from error
        return PostgresDatabase(url)
    raise ValueError("a database URL is empty (SQLite in the data dir) or postgresql://...")


def iso_utc(seconds: float | None = None) -> str:
    """ISO 8601 UTC timestamp to the second, e.g. 2024-05-01T12:00:00Z."""
    moment = datetime.fromtimestamp(time.time() if seconds is None else seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
