"""Moving up: copy an install's rows and blobs into another database and blob store.

`facefuse migrate --to-database postgresql://... --to-storage s3://...` reads the current
install (its FACEFUSE_* settings; an embedded one is the SQLite file and the data dir)
and copies keys, key usage, templates and live results into the targets, then reads
everything back: every source row must be in the target and every copied blob must
hash (SHA-256) to its source's bytes.

Safe to run twice, or after a run that died: rows go in with ON CONFLICT DO NOTHING, a
blob whose target already holds the same bytes is not written again, and blob before row
keeps the stores' rule (a row only ever names a stored blob). A key revoked in the
source since an earlier run is revoked in the target too; nothing the target changed
itself is undone. Expired results are left behind.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from facefuse.storage.blobs import BlobStore
from facefuse.storage.database import Database
from facefuse.storage.results import blob_name as result_blob_name
from facefuse.templates.registry import BLOB_FOLDER as TEMPLATE_FOLDER
from facefuse.templates.registry import EXTENSIONS


@dataclass(frozen=True)
class Table:
    name: str
    key: str  # the primary key column
    columns: tuple[str, ...]
    order: str  # source order, so insertion order (rowid) carries over


KEYS = Table(
    "api_keys",
    "api_key",
    ("api_key", "secret_hash", "name", "admin", "qps", "daily_quota", "created_at", "revoked_at"),
    "rowid",
)
USAGE = Table("key_usage", "api_key", ("api_key", "tokens", "updated_at", "day", "day_count"), "api_key")
TEMPLATES = Table(
    "templates",
    "template_id",
    (
        "template_id",
        "revision",
        "name",
        "format",
        "width",
        "height",
        "face_count",
        "faces_json",
        "fuse_degree",
        "shape_degree",
        "created_at",
    ),  # fmt: skip
    "rowid",
)
RESULTS = Table("results", "token", ("token", "created_at", "expires_at"), "created_at")


class MigrationError(RuntimeError):
    """The target does not hold what the source does; the message says what differs."""


@dataclass
class TableCount:
    source: int = 0  # rows to carry over
    copied: int = 0  # inserted by this run
    present: int = 0  # in the target already (an earlier run)


@dataclass
class MigrationReport:
    tables: dict[str, TableCount] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_present: int = 0  # the target held the same bytes already
    blobs_verified: int = 0
    results_skipped: int = 0  # live rows whose JPEG is gone from the source

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": {name: vars(count) for name, count in self.tables.items()},
            "blobs": {"copied": self.blobs_copied, "present": self.blobs_present, "verified": self.blobs_verified},
            "results_skipped": self.results_skipped,
        }


def copy_install(
    source_db: Database, source_blobs: BlobStore, target_db: Database, target_blobs: BlobStore
) -> MigrationReport:
    """Copy everything, then verify it; raise MigrationError when the target differs."""
    report = MigrationReport()
    copier = _BlobCopier(source_blobs, target_blobs, report)
    keys = _rows(source_db, KEYS)
    _insert(target_db, KEYS, keys, report)
    _carry_revocations(target_db, keys)
    _insert(target_db, USAGE, _rows(source_db, USAGE), report)
    templates = _rows(source_db, TEMPLATES)
    for row in templates:
        copier.copy(_template_blob(row))
    _insert(target_db, TEMPLATES, templates, report)
    live = [row for row in _rows(source_db, RESULTS) if float(row[2]) > time.time()]
    kept = [row for row in live if copier.copy(result_blob_name(row[0]))]
    report.results_skipped = len(live) - len(kept)
    _insert(target_db, RESULTS, kept, report)
    _verify_rows(target_db, KEYS, keys)
    _verify_rows(target_db, TEMPLATES, templates)
    _verify_rows(target_db, RESULTS, kept)
    _verify_same_revisions(target_db, templates)
    copier.verify()
    return report


def _rows(db: Database, table: Table) -> list[tuple[Any, ...]]:
    sql = f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.order}"
    return [tuple(row) for row in db.query(sql)]


def _insert(db: Database, table: Table, rows: list[tuple[Any, ...]], report: MigrationReport) -> None:
    count = report.tables.setdefault(table.name, TableCount())
    count.source += len(rows)
    marks = ", ".join("?" for _ in table.columns)
    sql = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks}) ON CONFLICT ({table.key}) DO NOTHING"
    with db.transaction() as conn:
        for row in rows:
            inserted = conn.execute(sql, row).rowcount == 1
            count.copied += inserted
            count.present += not inserted


def _carry_revocations(db: Database, keys: list[tuple[Any, ...]]) -> None:
    revoked_at = KEYS.columns.index("revoked_at")
    with db.transaction() as conn:
        for row in keys:
            if row[revoked_at] is not None:
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE api_key = ? AND revoked_at IS NULL",
                    (row[revoked_at], row[0]),
                )


def _template_blob(row: tuple[Any, ...]) -> str:
    template_id, revision, fmt = row[0], row[1], row[3]
    return f"{TEMPLATE_FOLDER}/{template_id}.{revision}.{EXTENSIONS[fmt]}"


def _verify_rows(db: Database, table: Table, rows: list[tuple[Any, ...]]) -> None:
    present = {row[0] for row in db.query(f"SELECT {table.key} FROM {table.name}")}
    missing = [row[0] for row in rows if row[0] not in present]
    if missing:
        raise MigrationError(f"{len(missing)} of {len(rows)} {table.name} rows are not in the target database")


def _verify_same_revisions(db: Database, templates: list[tuple[Any, ...]]) -> None:
    target = {row[0]: row[1] for row in db.query("SELECT template_id, revision FROM templates")}
    differ = sorted(row[0] for row in templates if target.get(row[0]) != row[1])
    if differ:
        raise MigrationError(f"the target holds other templates under the ids {', '.join(differ[:10])}")


class _BlobCopier:
    """Copies blobs source -> target, remembering each one's SHA-256 for the final check."""

    def __init__(self, source: BlobStore, target: BlobStore, report: MigrationReport) -> None:
        self.source = source
        self.target = target
        self.report = report
        self.digests: dict[str, str] = {}

    def copy(self, name: str) -> bool:
        """Copy one blob unless the target has its bytes; False when the source has none."""
        data = self.source.get(name)
        if data is None:
            return False
        digest = hashlib.sha256(data).hexdigest()
        there = self.target.get(name)
        if there is not None and hashlib.sha256(there).hexdigest() == digest:
            self.report.blobs_present += 1
        else:
            self.target.put(name, data)
            self.report.blobs_copied += 1
        self.digests[name] = digest
        return True

    def verify(self) -> None:
        for name, digest in self.digests.items():
            data = self.target.get(name)
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                raise MigrationError(f"the target's copy of {name} differs from the source's")
            self.report.blobs_verified += 1
