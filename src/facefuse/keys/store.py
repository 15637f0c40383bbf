"""API keys: the key is an identifier, the secret is shown once and stored only as a hash.

Hashing: secrets are 256 random bits (secrets.token_urlsafe(32)), so nobody can guess
one from its hash whatever the hash speed; a slow password hash (bcrypt, scrypt) or
a salt adds nothing but latency on every request. So a secret is stored as
SHA-256 over a domain tag, the api_key and the secret (the api_key in it ties a hash
to its row: a hash copied onto another key does not verify). No pepper file: it
would add a second thing to back up (lose it and every key dies) while protecting
secrets that a database leak cannot reveal anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Any

from facefuse.errors import Err, FacefuseError
from facefuse.storage.database import Database, iso_utc

API_KEY_ALPHABET = string.ascii_lowercase + string.digits
API_KEY_LENGTH = 32  # about 165 random bits
SECRET_BYTES = 32
MAX_NAME_LENGTH = 200
MAX_CREDENTIAL_LENGTH = 256  # longer input cannot match; do not hash megabytes of it
HASH_SCHEME = "sha256v1"
FIRST_KEY_LOCK = "facefuse:first-key"


@dataclass(frozen=True)
class ApiKey:
    """A key as stored; never holds the secret."""

    api_key: str
    name: str
    admin: bool
    qps: float | None
    daily_quota: int | None
    created_at: str  # ISO 8601 UTC
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, object]:
        """The view `keys list --json` and GET /v3/keys give (docs/api.md B.7, B.10)."""
        return {
            "api_key": self.api_key,
            "name": self.name,
            "admin": self.admin,
            "qps": self.qps,
            "daily_quota": self.daily_quota,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_secret(api_key: str, secret: str) -> str:
    digest = hashlib.sha256(f"facefuse-api-secret\0{api_key}\0{secret}".encode()).hexdigest()
    return f"{HASH_SCHEME}${digest}"


# Unknown keys are checked against this, so that they cost the same work as known ones.
_DUMMY_HASH = hash_secret("0" * API_KEY_LENGTH, secrets.token_urlsafe(SECRET_BYTES))


class KeyStore:
    """Create, verify, list and revoke API keys in the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, name: str, admin: bool = False, qps: float | None = None, daily_quota: int | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its plaintext secret; the secret cannot be had again."""
        _check_limits(name, qps, daily_quota)
        api_key = "".join(secrets.choice(API_KEY_ALPHABET) for _ in range(API_KEY_LENGTH))
        secret = secrets.token_urlsafe(SECRET_BYTES)
        qps = float(qps) if qps is not None else None
        key = ApiKey(
            api_key=api_key,
            name=name,
            admin=bool(admin),
            qps=qps,
            daily_quota=daily_quota,
            created_at=iso_utc(),
            revoked_at=None,
        )
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (api_key, secret_hash, name, admin, qps, daily_quota, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.api_key,
                    hash_secret(api_key, secret),
                    key.name,
                    int(key.admin),
                    key.qps,
                    key.daily_quota,
                    key.created_at,
                ),
            )
        return key, secret

    def create_first(self, name: str) -> tuple[ApiKey, str] | None:
        """An admin key and its secret if there is no key at all yet, else None; nodes starting
        together on one database make one between them."""
        with self.db.transaction(lock=FIRST_KEY_LOCK):
            return self.create(name, admin=True) if self.count() == 0 else None

    def verify(self, api_key: str, secret: str) -> ApiKey | None:
        """The active key these credentials name, or None (unknown, revoked or wrong secret).

        Known and unknown keys cost the same hash and comparison.
        """
        if not _plausible(api_key) or not _plausible(secret):
            return None
        row = self.db.query_one("SELECT * FROM api_keys WHERE api_key = ?", (api_key,))
        stored = row["secret_hash"] if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_secret(api_key, secret).encode(), stored.encode())
        if row is None or not matches or row["revoked_at"] is not None:
            return None
        return _key_from_row(row)

    def get(self, api_key: str) -> ApiKey | None:
        row = self.db.query_one("SELECT * FROM api_keys WHERE api_key = ?", (api_key,))
        return _key_from_row(row) if row is not None else None

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        rows = self.db.query("SELECT * FROM api_keys ORDER BY created_at, rowid")
        return [_key_from_row(row) for row in rows]

    def revoke(self, api_key: str) -> bool:
        """Revoke an active key at once (every process checks the database on each request)."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE api_key = ? AND revoked_at IS NULL", (iso_utc(), api_key)
            )
        return cursor.rowcount == 1

    def count(self) -> int:
        """All keys ever created, revoked ones included."""
        return int(self.db.scalar("SELECT count(*) FROM api_keys"))


def _plausible(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CREDENTIAL_LENGTH


def _check_limits(name: str, qps: float | None, daily_quota: int | None) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise FacefuseError(Err.INVALID_PARAMETER, f"name must be 1..{MAX_NAME_LENGTH} characters")
    if qps is not None and (
        isinstance(qps, bool) or not isinstance(qps, (int, float)) or not qps > 0 or qps == float("inf")
    ):
        raise FacefuseError(Err.INVALID_PARAMETER, "qps must be a number above 0")
    if daily_quota is not None and (
        isinstance(daily_quota, bool) or not isinstance(daily_quota, int) or daily_quota < 0
    ):
        raise FacefuseError(Err.INVALID_PARAMETER, "daily_quota must be an integer of 0 or more")


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        api_key=row["api_key"],
        name=row["name"],
        admin=bool(row["admin"]),
        qps=row["qps"],
        daily_quota=row["daily_quota"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
