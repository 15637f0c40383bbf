"""Fused JPEGs kept behind unguessable, expiring tokens (docs/api.md B.5)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from facefuse.storage.db import Database
from facefuse.storage.files import write_atomic

TOKEN_BYTES = 24  # 192 random bits
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) makes, nothing else
# A file without a row is an orphan once it is older than this; younger ones may be a
# save between its file write and its row insert.
ORPHAN_GRACE_SECONDS = 3600.0


class ResultStore:
    """Result files in results_dir, one row each (token, created_at, expires_at) in the database.

    A result is written file first, row second; a crash between the two leaves a file
    no link points to, which cleanup() removes after ORPHAN_GRACE_SECONDS.
    """

    def __init__(
        self, db: Database, results_dir: Path, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.results_dir = Path(results_dir)
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.results_dir.mkdir(parents=True, exist_ok=True)

    def save(self, jpeg: bytes) -> str:
        """Store a JPEG; answer its token (32 url-safe characters)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        write_atomic(self._file(token), jpeg)
        now = self.clock()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO results (token, created_at, expires_at) VALUES (?, ?, ?)",
                (token, now, now + self.ttl_seconds),
            )
        return token

    def path_for(self, token: str) -> Path | None:
        """The file of a live result; None for a malformed, unknown or expired token."""
        if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
            return None
        row = self.db.query_one("SELECT expires_at FROM results WHERE token = ?", (token,))
        if row is None or row["expires_at"] <= self.clock():
            return None
        path = self._file(token)
        return path if path.is_file() else None

    def cleanup(self, now: float | None = None) -> int:
        """Delete expired results (rows and files) and old orphan files; answer how many went."""
        now = self.clock() if now is None else now
        expired = self._delete_expired_rows(now)
        for token in expired:
            self._file(token).unlink(missing_ok=True)
        return len(expired) + self._delete_orphans(now)

    def count(self) -> int:
        """Stored results, expired or not."""
        return int(self.db.scalar("SELECT count(*) FROM results"))

    def _delete_expired_rows(self, now: float) -> list[str]:
        # Rows go first: a crash before the unlinks leaves orphans, which are swept later.
        with self.db.transaction() as conn:
            tokens = [r[0] for r in conn.execute("SELECT token FROM results WHERE expires_at <= ?", (now,))]
            conn.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
        return tokens

    def _delete_orphans(self, now: float) -> int:
        old_files = [p for p in self.results_dir.iterdir() if _age(p, now) >= ORPHAN_GRACE_SECONDS]
        if not old_files:
            return 0
        # Every file this old had its row inserted long ago, so one snapshot of the tokens will do.
        known = {f"{row[0]}.jpg" for row in self.db.query("SELECT token FROM results")}
        orphans = [p for p in old_files if p.name not in known]
        for path in orphans:
            path.unlink(missing_ok=True)
        return len(orphans)

    def _file(self, token: str) -> Path:
        return self.results_dir / f"{token}.jpg"


def _age(path: Path, now: float) -> float:
    """Seconds since path was last written; -inf for what is not a plain file (or is gone)."""
    try:
        return now - path.stat().st_mtime if path.is_file() else float("-inf")
    except FileNotFoundError:
        return float("-inf")
