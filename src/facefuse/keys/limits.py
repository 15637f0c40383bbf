"""Per-key rate limit (qps, a token bucket) and daily quota, shared by all worker processes.

The state lives in the database (table key_usage), updated in one transaction per
request of a limited key that holds that key's lock, so `--workers N` processes, and
every node sharing a PostgreSQL database, share one budget exactly (a per-process bucket
of qps/N would refuse a key whose requests all land on one worker and drift when workers
restart); keys with neither limit never touch it. The counters are written without a
flush per commit (Database.counters: SQLite's synchronous=NORMAL, PostgreSQL's
synchronous_commit=off): durable against kill -9 of a node, and an OS or database crash
may forget the last few counts, which only lets a key spend them again. The
bucket holds max(1, qps) tokens: a key may spend a second's worth at once, then qps per
second. Refused requests spend nothing. Every authenticated
request of a key counts towards its quota, whatever its outcome, as cloud APIs bill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from facefuse.errors import Err, FacefuseError
from facefuse.keys.store import ApiKey
from facefuse.storage.database import Database


class RateLimitExceeded(FacefuseError):
    """A limit refusal with the seconds after which a retry can succeed."""

    def __init__(self, error: Err, detail: str, retry_after: float) -> None:
        super().__init__(error, detail)
        self.retry_after = max(1, math.ceil(retry_after))


class UsageLimiter:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        # Its own connections to the same database: only these skip the flush per commit.
        self.db = db.counters()
        self.clock = clock

    def spend(self, key: ApiKey) -> None:
        """Take one request from the key's budget, or raise RateLimitExceeded."""
        if key.qps is None and key.daily_quota is None:
            return
        now = self.clock()
        today = _utc_day(now)
        with self.db.transaction(lock=f"facefuse:usage:{key.api_key}") as conn:
            row = conn.execute(
                "SELECT tokens, updated_at, day, day_count FROM key_usage WHERE api_key = ?", (key.api_key,)
            ).fetchone()
            capacity = max(1.0, key.qps or 1.0)
            tokens, count = (capacity, 0) if row is None else (float(row[0]), int(row[3]))
            if row is not None:
                if key.qps is not None:
                    tokens = min(capacity, tokens + max(0.0, now - float(row[1])) * key.qps)
                if row[2] != today:
                    count = 0
            if key.daily_quota is not None and count >= key.daily_quota:
                spent = f"the daily quota of {key.daily_quota} requests is spent; it renews at 00:00 UTC"
                raise RateLimitExceeded(Err.QUOTA_EXCEEDED, spent, _seconds_to_midnight(now))
            if key.qps is not None and tokens < 1.0:
                raise RateLimitExceeded(
                    Err.QPS_LIMIT_EXCEEDED,
                    f"this key may send {key.qps:g} requests per second",
                    (1.0 - tokens) / key.qps,
                )
            conn.execute(
                "INSERT INTO key_usage (api_key, tokens, updated_at, day, day_count) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(api_key) DO UPDATE SET tokens = excluded.tokens,"
                " updated_at = excluded.updated_at, day = excluded.day, day_count = excluded.day_count",
                (key.api_key, tokens - 1.0 if key.qps is not None else capacity, now, today, count + 1),
            )


def _utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")


def _seconds_to_midnight(now: float) -> float:
    moment = datetime.fromtimestamp(now, timezone.utc)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()
