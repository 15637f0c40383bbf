"""API keys on a real SQLite file and a real PostgreSQL server: verification, revocation, and no secret at rest."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import components
import pytest
from conftest import Backend

from facefuse.errors import Err, FacefuseError
from facefuse.keys import store as key_store
from facefuse.keys.store import ApiKey, KeyStore
from facefuse.storage.database import Database
from facefuse.storage.db import SqliteDatabase
from facefuse.storage.postgres import PostgresDatabase
from facefuse.wire.dbcalls import THREAD_NAME_PREFIX, DatabaseCalls


@pytest.fixture
def db(backend: Backend) -> Database:
    database = backend.open_db()
    yield database
    database.close()


@pytest.fixture
def keys(db: Database) -> KeyStore:
    return KeyStore(db)


def test_create_answers_the_record_and_the_secret_once(keys: KeyStore) -> None:
    key, secret = keys.create("mobile app", admin=True, qps=5, daily_quota=1000)
    assert re.fullmatch(r"[0-9a-z]{32}", key.api_key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)  # 256 bits
    assert key == ApiKey(
        api_key=key.api_key,
        name="mobile app",
        admin=True,
        qps=5.0,
        daily_quota=1000,
        created_at=key.created_at,
        revoked_at=None,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", key.created_at)
    assert secret not in repr(key)
    assert keys.list() == [key]
    assert keys.count() == 1


def test_verify_right_wrong_unknown_and_revoked(keys: KeyStore) -> None:
    key, secret = keys.create("client")
    other, other_secret = keys.create("other")
    assert keys.verify(key.api_key, secret) == key
    assert keys.verify(key.api_key, secret + "x") is None
    assert keys.verify(key.api_key, secret[:-1]) is None
    assert keys.verify(key.api_key, other_secret) is None  # a real secret, of another key
    assert keys.verify("0" * 32, secret) is None
    assert keys.verify("", secret) is None
    assert keys.verify(key.api_key, "") is None
    assert keys.verify(key.api_key, "x" * 100_000) is None
    assert keys.revoke(key.api_key) is True
    assert keys.verify(key.api_key, secret) is None
    assert keys.revoke(key.api_key) is False
    assert keys.revoke("nosuchkey") is False
    assert keys.verify(other.api_key, other_secret) == other
    revoked = keys.get(key.api_key)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    assert keys.count() == 2  # revoked keys still count: no surprise first-start key


def test_unknown_keys_cost_the_same_hash_and_comparison(keys: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = keys.create("client")
    calls: list[str] = []
    real_hash, real_compare = key_store.hash_secret, key_store.hmac.compare_digest
    monkeypatch.setattr(key_store, "hash_secret", lambda k, s: calls.append("hash") or real_hash(k, s))
    monkeypatch.setattr(key_store.hmac, "compare_digest", lambda a, b: calls.append("compare") or real_compare(a, b))
    for api_key, candidate in [(key.api_key, secret), (key.api_key, "wrong"), ("f" * 32, secret)]:
        calls.clear()
        keys.verify(api_key, candidate)
        assert calls == ["hash", "compare"], api_key


def test_revocation_by_another_connection_counts_at_once(backend: Backend, keys: KeyStore) -> None:
    key, secret = keys.create("client")
    assert keys.verify(key.api_key, secret) is not None
    other_process = KeyStore(backend.open_db())  # its own connections, as the CLI and other nodes have
    assert other_process.revoke(key.api_key)
    assert keys.verify(key.api_key, secret) is None


def test_only_a_hash_of_the_secret_is_stored(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "facefuse.sqlite3")
    keys = KeyStore(db)
    created = [keys.create(f"key {i}") for i in range(5)]

    def stored_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())

    db.query("PRAGMA wal_checkpoint(FULL)")
    for moment in ("after checkpoint", "after more writes"):
        data = stored_bytes()
        for key, secret in created:
            assert key.api_key.encode() in data, moment  # the file is the one written
            assert secret.encode() not in data, moment
            assert secret[:16].encode() not in data, moment
        keys.create("one more")
    row = db.query_one("SELECT secret_hash FROM api_keys WHERE api_key = ?", (created[0][0].api_key,))
    assert row["secret_hash"].startswith("sha256v1$") and len(row["secret_hash"]) == 9 + 64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": "ok", "qps": 0},
        {"name": "ok", "qps": -1},
        {"name": "ok", "qps": float("nan")},
        {"name": "ok", "qps": True},
        {"name": "ok", "daily_quota": -1},
        {"name": "ok", "daily_quota": 1.5},
    ],
)
def test_bad_key_limits_are_refused(keys: KeyStore, kwargs: dict) -> None:
    with pytest.raises(FacefuseError) as caught:
        keys.create(**kwargs)
    assert caught.value.error is Err.INVALID_PARAMETER
    assert keys.count() == 0


def test_list_is_oldest_first_and_keeps_revoked(keys: KeyStore) -> None:
    first, _ = keys.create("first")
    second, _ = keys.create("second", admin=True)
    keys.revoke(first.api_key)
    listed = keys.list()
    assert [k.api_key for k in listed] == [first.api_key, second.api_key]
    assert listed[0].revoked_at is not None and listed[1].admin


def test_nodes_starting_together_make_one_first_key(backend: Backend) -> None:
    import threading

    made: list[object] = []
    nodes = [KeyStore(backend.open_db()) for _ in range(4)]
    threads = [threading.Thread(target=lambda k=k: made.append(k.create_first("first key"))) for k in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([m for m in made if m is not None]) == 1 and nodes[0].count() == 1
    assert nodes[0].list()[0].admin


def test_key_checks_run_on_the_event_loop_with_sqlite_and_on_a_database_thread_with_postgresql(
    db: Database, keys: KeyStore, backend: Backend
) -> None:
    key, secret = keys.create("caller")
    calls = DatabaseCalls(db, threads=1)

    async def check() -> tuple[str, str]:
        def verify() -> str:
            assert keys.verify(key.api_key, secret) == key
            return threading.current_thread().name

        return threading.current_thread().name, await calls.run(verify)

    try:
        loop_thread, call_thread = asyncio.run(check())
    finally:
        calls.close()
    if backend.scaled:
        assert call_thread.startswith(THREAD_NAME_PREFIX)
    else:
        assert call_thread == loop_thread  # embedded: no thread hop


def test_a_call_that_finds_every_database_thread_busy_waits_for_one_and_is_refused_past_the_wait(
    postgres: components.PostgresServer,
) -> None:
    db = PostgresDatabase(postgres.create_database())  # (SQLite's calls run on the event loop: no threads)
    keys = KeyStore(db)
    key, secret = keys.create("caller")
    held, release = threading.Event(), threading.Event()

    def holding() -> bool:  # a call the test holds on the one thread (a slow database, as far as others see)
        held.set()
        return release.wait(60)

    async def queued_then_refused() -> None:
        patient, hasty = DatabaseCalls(db, threads=1, thread_wait=60), DatabaseCalls(db, threads=1, thread_wait=0)
        try:
            for calls in (patient, hasty):
                held.clear()
                release.clear()
                holder = asyncio.ensure_future(calls.run(holding))
                await asyncio.to_thread(held.wait, 60)
                waiter = asyncio.ensure_future(calls.run(lambda: keys.verify(key.api_key, secret)))
                await asyncio.sleep(0)  # the second call is now waiting for the thread
                if calls is hasty:
                    with pytest.raises(FacefuseError) as refused:
                        await waiter
                    assert refused.value.error is Err.SERVER_BUSY
                release.set()
                assert await holder
                if calls is patient:
                    assert await waiter == key  # it waited for the thread and ran, not refused
        finally:
            patient.close()
            hasty.close()

    try:
        asyncio.run(queued_then_refused())
    finally:
        db.close()
