"""The database schema as numbered migrations, one list per database kind.

Migration N (1-based) brings a database from schema version N-1 to N. Append to both
lists together, never edit one that has shipped: every node applies the missing ones at
start (storage.db for SQLite, storage.postgres for PostgreSQL), each database under its
own lock, so nodes starting at once migrate it exactly once.

The two lists hold the same tables and columns; they differ only where the two SQL
dialects do. PostgreSQL's tables that are listed in insertion order get a `rowid`
identity column, so the one query text (`ORDER BY rowid`) reads the same order on both.
"""

from __future__ import annotations

SQLITE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE api_keys (
            api_key     TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            name        TEXT NOT NULL,
            admin       INTEGER NOT NULL CHECK (admin IN (0, 1)),
            qps         REAL CHECK (qps IS NULL OR qps > 0),
            daily_quota INTEGER CHECK (daily_quota IS NULL OR daily_quota >= 0),
            created_at  TEXT NOT NULL,
            revoked_at  TEXT
        )""",
        """CREATE TABLE templates (
            template_id  TEXT PRIMARY KEY,
            revision     TEXT NOT NULL,
            name         TEXT NOT NULL,
            format       TEXT NOT NULL CHECK (format IN ('jpeg', 'png')),
            width        INTEGER NOT NULL,
            height       INTEGER NOT NULL,
            face_count   INTEGER NOT NULL CHECK (face_count >= 1),
            faces_json   TEXT NOT NULL,
            fuse_degree  INTEGER CHECK (fuse_degree BETWEEN 0 AND 100),
            shape_degree INTEGER CHECK (shape_degree BETWEEN 0 AND 100),
            created_at   TEXT NOT NULL
        )""",
        """CREATE TABLE results (
            token      TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX results_by_expiry ON results (expires_at)",
    ),
    (
        # Per-key usage shared by every worker process: a token bucket for qps and a
        # counter per UTC day for the daily quota.
        """CREATE TABLE key_usage (
            api_key    TEXT PRIMARY KEY,
            tokens     REAL NOT NULL,
            updated_at REAL NOT NULL,
            day        TEXT NOT NULL,
            day_count  INTEGER NOT NULL
        )""",
    ),
)

# DOUBLE PRECISION where SQLite says REAL: PostgreSQL's REAL is 4 bytes, too coarse for
# Unix times and token counts.
POSTGRES_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE api_keys (
            rowid       BIGINT GENERATED ALWAYS AS IDENTITY,
            api_key     TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            name        TEXT NOT NULL,
            admin       INTEGER NOT NULL CHECK (admin IN (0, 1)),
            qps         DOUBLE PRECISION CHECK (qps IS NULL OR qps > 0),
            daily_quota INTEGER CHECK (daily_quota IS NULL OR daily_quota >= 0),
            created_at  TEXT NOT NULL,
            revoked_at  TEXT
        )""",
        """CREATE TABLE templates (
            rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
            template_id  TEXT PRIMARY KEY,
            revision     TEXT NOT NULL,
            name         TEXT NOT NULL,
            format       TEXT NOT NULL CHECK (format IN ('jpeg', 'png')),
            width        INTEGER NOT NULL,
            height       INTEGER NOT NULL,
            face_count   INTEGER NOT NULL CHECK (face_count >= 1),
            faces_json   TEXT NOT NULL,
            fuse_degree  INTEGER CHECK (fuse_degree BETWEEN 0 AND 100),
            shape_degree INTEGER CHECK (shape_degree BETWEEN 0 AND 100),
            created_at   TEXT NOT NULL
        )""",
        "CREATE INDEX templates_by_rowid ON templates (rowid)",
        """CREATE TABLE results (
            token      TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX results_by_expiry ON results (expires_at)",
    ),
    (
        """CREATE TABLE key_usage (
            api_key    TEXT PRIMARY KEY,
            tokens     DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            day        TEXT NOT NULL,
            day_count  INTEGER NOT NULL
        )""",
    ),
)

SCHEMA_VERSION = len(SQLITE_MIGRATIONS)
assert len(POSTGRES_MIGRATIONS) == SCHEMA_VERSION, "every migration exists for both databases"


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer facefuse than this one."""
