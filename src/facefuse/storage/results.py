"""Fused JPEGs kept behind unguessable, expiring tokens (docs/api.md B.5)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from facefuse.storage.blobs import BlobStore
from facefuse.storage.database import Database

TOKEN_BYTES = 24  # 192 random bits
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) makes, nothing else
BLOB_FOLDER = "results"
BLOB_NAME_RE = re.compile(rf"{BLOB_FOLDER}/({TOKEN_RE.pattern})\.jpg")
# A blob without a row is an orphan once it is older than this; younger ones may be a
# save whose row is still on its way.
ORPHAN_GRACE_SECONDS = 3600.0
# Blobs one cleanup looks at for orphans: one LIST call on S3. Each cleanup takes the next
# page, and the page after the last starts the folder over.
ORPHAN_PAGE_BLOBS = 1000
TOKENS_PER_QUERY = 500  # under every SQLite build's limit of parameters in one statement
ROW_WRITERS = 4  # threads inserting result rows beside their objects' puts


class ResultStore:
    """Result JPEGs as blobs results/<token>.jpg, one row each (token, created_at, expires_at).

    A save puts the blob and inserts the row side by side and answers the token only when
    both are stored, so every node sharing the database and the blob store serves a link
    from the moment it is answered. A save that fails halfway takes back what it stored.
    A process killed meanwhile may leave a blob without a row, which cleanup() removes once
    it is ORPHAN_GRACE_SECONDS old, or a row without a blob: its token was never answered,
    it reads as unknown, and it goes when it expires.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        orphan_page: int = ORPHAN_PAGE_BLOBS,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.orphan_page = orphan_page
        self._orphans_after = ""  # the last blob name the previous orphan sweep looked at
        self._row_writer = ThreadPoolExecutor(ROW_WRITERS, thread_name_prefix="facefuse-result-rows")

    def save(self, jpeg: bytes) -> str:
        """Store a JPEG; answer its token (32 url-safe characters)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = self._row_writer.submit(self._insert_row, token, self.clock())
        try:
            self.blobs.put(blob_name(token), jpeg)
        except BaseException:
            self._take_back_row(row, token)
            raise
        try:
            row.result()
        except BaseException:
            self._take_back_blob(token)
            raise
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
        """Delete expired results (rows and blobs) and the old orphans among the next page of
        blobs; answer how many went. Expired rows are found by the database alone; the blob
        folder is listed one page per call, so a pass over it takes (blobs / page) calls."""
        now = self.clock() if now is None else now
        expired = self._delete_expired_rows(now)
        for token in expired:
            self.blobs.delete(blob_name(token))
        return len(expired) + self._delete_orphans(now)

    def count(self) -> int:
        """Stored results, expired or not."""
        return int(self.db.scalar("SELECT count(*) FROM results"))

    def close(self) -> None:
        """Let the row inserts under way finish; no more saves."""
        self._row_writer.shutdown(wait=True)

    def _insert_row(self, token: str, now: float) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO results (token, created_at, expires_at) VALUES (?, ?, ?)",
                (token, now, now + self.ttl_seconds),
            )

    def _take_back_row(self, row: Future[None], token: str) -> None:
        """The blob's put failed: the row, if it went in, goes again (else it expires unread)."""
        try:
            row.result()
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM results WHERE token = ?", (token,))
        except Exception:  # the put's error is the one to answer
            pass

    def _take_back_blob(self, token: str) -> None:
        """The row's insert failed: the blob goes again (else the orphan sweep takes it)."""
        try:
            self.blobs.delete(blob_name(token))
        except Exception:  # the insert's error is the one to answer
            pass

    def _delete_expired_rows(self, now: float) -> list[str]:
        # Rows go first: a crash before the blobs' deletes leaves orphans, which are swept
        # later. RETURNING: nodes sweeping at once each delete (and report) a row once.
        with self.db.transaction() as conn:
            return [row[0] for row in conn.execute("DELETE FROM results WHERE expires_at <= ? RETURNING token", (now,))]

    def _delete_orphans(self, now: float) -> int:
        page = self.blobs.list(BLOB_FOLDER, after=self._orphans_after, limit=self.orphan_page)
        self._orphans_after = page[-1].name if len(page) == self.orphan_page else ""
        old = [blob.name for blob in page if now - blob.modified >= ORPHAN_GRACE_SECONDS]
        known = self._names_with_rows(old)
        orphans = [name for name in old if name not in known]
        for name in orphans:
            self.blobs.delete(name)
        return len(orphans)

    def _names_with_rows(self, names: list[str]) -> set[str]:
        # Every blob this old had its row inserted long ago, so one look at its row will do.
        tokens = [match[1] for name in names if (match := BLOB_NAME_RE.fullmatch(name))]
        known: set[str] = set()
        for start in range(0, len(tokens), TOKENS_PER_QUERY):
            chunk = tuple(tokens[start : start + TOKENS_PER_QUERY])
            marks = ", ".join("?" * len(chunk))  # the statement holds marks only, the tokens go as parameters
            rows = self.db.query(f"SELECT token FROM results WHERE token IN ({marks})", chunk)
            known.update(blob_name(row[0]) for row in rows)
        return known


def blob_name(token: str) -> str:
    return f"{BLOB_FOLDER}/{token}.jpg"
