"""Fused JPEGs kept behind unguessable, expiring tokens (docs/api.md B.5)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

from facefuse.storage.blobs import BlobStore
from facefuse.storage.database import Database

TOKEN_BYTES = 24  # 192 random bits
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) makes, nothing else
BLOB_FOLDER = "results"
# A blob without a row is an orphan once it is older than this; younger ones may be a
# save between its blob write and its row insert.
ORPHAN_GRACE_SECONDS = 3600.0


class ResultStore:
    """Result JPEGs as blobs results/<token>.jpg, one row each (token, created_at, expires_at).

    A result is written blob first, row second; a crash between the two leaves a blob no
    link points to, which cleanup() removes after ORPHAN_GRACE_SECONDS. Every node sharing
    the database and the blob store serves every link.
    """

    def __init__(
        self, db: Database, blobs: BlobStore, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def save(self, jpeg: bytes) -> str:
        """Store a JPEG; answer its token (32 url-safe characters)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.blobs.put(blob_name(token), jpeg)
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO results (token, created_at, expires_at) VALUES (?, ?, ?)",
                (token, now, now + self.ttl_seconds),
            )
        return token

    def read(self, token: str) -> bytes | None:
        """The JPEG of a live result; None for a malformed, unknown or expired token."""
        if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
            return None
        row = self.db.query_one("SELECT expires_at FROM results WHERE token = ?", (token,))
        if row is None or row["expires_at"] <= self.clock():
            return None
        return self.blobs.get(blob_name(token))

    def cleanup(self, now: float | None = None) -> int:
        """Delete expired results (rows and blobs) and old orphan blobs; answer how many went."""
        now = self.clock() if now is None else now
        expired = self._delete_expired_rows(now)
        for token in expired:
            self.blobs.delete(blob_name(token))
        return len(expired) + self._delete_orphans(now)

    def count(self) -> int:
        """Stored results, expired or not."""
        return int(self.db.scalar("SELECT count(*) FROM results"))

    def _delete_expired_rows(self, now: float) -> list[str]:
        # Rows go first: a crash before the blobs' deletes leaves orphans, which are swept
        # later. RETURNING: nodes sweeping at once each delete (and report) a row once.
        with self.db.transaction() as conn:
            return [row[0] for row in conn.execute("DELETE FROM results WHERE expires_at <= ? RETURNING token", (now,))]

    def _delete_orphans(self, now: float) -> int:
        old = [blob.name for blob in self.blobs.list(BLOB_FOLDER) if now - blob.modified >= ORPHAN_GRACE_SECONDS]
        if not old:
            return 0
        # Every blob this old had its row inserted long ago, so one snapshot of the tokens will do.
        known = {blob_name(row[0]) for row in self.db.query("SELECT token FROM results")}
        orphans = [name for name in old if name not in known]
        for name in orphans:
            self.blobs.delete(name)
        return len(orphans)


def blob_name(token: str) -> str:
    return f"{BLOB_FOLDER}/{token}.jpg"
