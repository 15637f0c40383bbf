"""Storage: the databases (SQLite, PostgreSQL), atomic files, blob stores and result links, on real files,
a real PostgreSQL server and moto's S3 server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Backend

from facefuse.storage import files
from facefuse.storage.blobs import BlobInfo, BlobStore, LocalBlobStore
from facefuse.storage.database import Database, iso_utc
from facefuse.storage.db import SqliteDatabase
from facefuse.storage.files import write_atomic
from facefuse.storage.results import ORPHAN_GRACE_SECONDS, TOKEN_RE, ResultStore, blob_name
from facefuse.storage.s3 import S3BlobStore
from facefuse.storage.schema import SCHEMA_VERSION, SchemaTooNewError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> SqliteDatabase:
    database = SqliteDatabase(tmp_path / "data" / "facefuse.sqlite3")
    yield database
    database.close()


# ------------------------------------------------------------------ database


def test_database_is_wal_durable_and_versioned(db: SqliteDatabase) -> None:
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    assert db.query_one("PRAGMA synchronous")[0] == 2  # FULL
    assert db.query_one("PRAGMA foreign_keys")[0] == 1
    assert db.query_one("PRAGMA busy_timeout")[0] >= 1000
    assert db.schema_version == SCHEMA_VERSION
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"api_keys", "templates", "results"} <= tables
    db.ping()


def test_reopening_keeps_data_and_a_newer_schema_is_refused(db: SqliteDatabase) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO results VALUES ('t', 1, 2)")
    again = SqliteDatabase(db.path)
    assert again.query_one("SELECT count(*) FROM results")[0] == 1
    with again.transaction() as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError):
        SqliteDatabase(db.path)
    again.close()


def _integrity_errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, psycopg.IntegrityError)


def test_transaction_rolls_back_on_error_and_nests_as_savepoint(backend: Backend) -> None:
    db = backend.open_db()
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO results VALUES ('a', 1, 2)")
            raise RuntimeError("boom")
    with db.transaction() as conn:
        conn.execute("INSERT INTO results VALUES ('b', 1, 2)")
        with pytest.raises(_integrity_errors()):
            with db.transaction() as inner:
                inner.execute("INSERT INTO results VALUES ('c', 1, 2)")
                inner.execute("INSERT INTO results VALUES ('b', 1, 2)")
    assert [r[0] for r in db.query("SELECT token FROM results")] == ["b"]
    assert [r["token"] for r in backend.open_db().query("SELECT token FROM results")] == ["b"]


def test_threads_each_get_a_connection_and_write_together(backend: Backend) -> None:
    db = backend.open_db()
    seen: set[int] = set()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            seen.add(id(db.connection()))
            for i in range(25):
                with db.transaction() as conn:
                    conn.execute("INSERT INTO results VALUES (?, 1, 2)", (f"{n}-{i}",))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(seen) == 8
    assert db.query_one("SELECT count(*) FROM results")[0] == 200


def test_a_named_lock_is_held_by_one_transaction_at_a_time(backend: Backend) -> None:
    """Read-then-write under one lock name, from two databases' worth of connections (two nodes)."""
    nodes = [backend.open_db(), backend.open_db()]
    with nodes[0].transaction() as conn:
        conn.execute("INSERT INTO results VALUES ('counter', 0, 0)")

    def bump(db: Database) -> None:
        for _ in range(20):
            with db.transaction(lock="test:counter") as conn:
                value = conn.execute("SELECT created_at FROM results WHERE token = 'counter'").fetchone()[0]
                conn.execute("UPDATE results SET created_at = ? WHERE token = 'counter'", (value + 1,))

    threads = [threading.Thread(target=bump, args=(nodes[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert nodes[1].scalar("SELECT created_at FROM results WHERE token = 'counter'") == 120


def test_processes_open_a_fresh_database_and_write_at_once(tmp_path: Path) -> None:
    """Several processes migrate the same new file and save results into it at the same moment."""
    script = (
        "import sys; from pathlib import Path\n"
        "from facefuse.storage.blobs import LocalBlobStore\n"
        "from facefuse.storage.db import SqliteDatabase\n"
        "from facefuse.storage.results import ResultStore\n"
        "store = ResultStore(SqliteDatabase(Path(sys.argv[1])), LocalBlobStore(Path(sys.argv[2])), 3600)\n"
        "for _ in range(30): store.save(b'x' * 1000)\n"
    )
    db_path, results_dir = tmp_path / "shared.sqlite3", tmp_path / "results"
    children = [subprocess.Popen([sys.executable, "-c", script, str(db_path), str(tmp_path)]) for _ in range(4)]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0, 0]
    db = SqliteDatabase(db_path)
    assert db.schema_version == SCHEMA_VERSION
    assert db.query_one("SELECT count(*) FROM results")[0] == 120
    assert len(list(results_dir.glob("*.jpg"))) == 120
    assert db.query_one("PRAGMA integrity_check")[0] == "ok"


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"


# ------------------------------------------------------------------ atomic files


def test_write_atomic_writes_and_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file.bin"
    write_atomic(target, b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


# ------------------------------------------------------------------ results


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def results(backend: Backend, clock: Clock) -> ResultStore:
    return ResultStore(backend.open_db(), backend.blobs, ttl_seconds=3600, clock=clock)


def test_result_tokens_are_long_random_and_url_safe(results: ResultStore) -> None:
    tokens = {results.save(b"jpeg") for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert TOKEN_RE.fullmatch(token) and len(token) == 32  # 192 bits
        assert results.read(token) == b"jpeg"
    assert {blob.name for blob in results.blobs.list("results")} == {blob_name(t) for t in tokens}


@pytest.mark.parametrize(
    "token",
    [
        "../x",
        "../../etc/passwd",
        "..",
        "",
        "/etc/passwd",
        "a" * 31,
        "a" * 33,
        "a" * 31 + "/",
        "a" * 31 + ".",
        "%2e%2e%2fxxxxxxxxxxxxxxxxxxxxxxxxx",
        "a" * 32 + "\n",
        "\n" + "a" * 32,
        "a" * 30 + "\\x",
        "ａ" * 32,
        "a" * 32 + ".jpg",
    ],
)
def test_malformed_tokens_find_nothing(results: ResultStore, token: str) -> None:
    results.save(b"jpeg")
    assert results.read(token) is None


def test_unknown_token_finds_nothing(results: ResultStore) -> None:
    assert results.read("A" * 32) is None


def test_a_result_saved_through_one_node_is_read_through_another(backend: Backend, clock: Clock) -> None:
    one = ResultStore(backend.open_db(), backend.blobs, ttl_seconds=3600, clock=clock)
    other = ResultStore(backend.open_db(), backend.blobs, ttl_seconds=3600, clock=clock)
    assert other.read(one.save(b"shared jpeg")) == b"shared jpeg"


def test_results_expire_and_cleanup_removes_rows_and_blobs(results: ResultStore, clock: Clock) -> None:
    old = results.save(b"old")
    clock.now += 1800
    young = results.save(b"young")
    assert results.read(old) == b"old"
    clock.now += 1800  # old is exactly ttl seconds old: expired
    assert results.read(old) is None
    assert results.read(young) == b"young"
    assert results.cleanup() == 1
    assert results.blobs.get(blob_name(old)) is None and results.count() == 1
    assert results.cleanup(now=clock.now + 1800) == 1
    assert results.count() == 0 and results.blobs.list("results") == []


def test_cleanup_sweeps_orphan_blobs_once_they_are_old(backend: Backend) -> None:
    real_now = time.time()  # blob ages are real time
    results = ResultStore(backend.open_db(), backend.blobs, ttl_seconds=10 * ORPHAN_GRACE_SECONDS)
    live = results.save(b"live")
    orphan = blob_name("B" * 32)  # a save killed between its blob and its row
    backend.blobs.put(orphan, b"x")
    assert results.cleanup(now=real_now) == 0  # maybe a save in flight right now
    assert results.cleanup(now=real_now + ORPHAN_GRACE_SECONDS + 10) == 1
    assert [blob.name for blob in backend.blobs.list("results")] == [blob_name(live)]


def test_cleanup_sweeps_leftover_temp_files_of_the_data_dir(tmp_path: Path) -> None:
    real_now = time.time()
    results = ResultStore(SqliteDatabase(tmp_path / "facefuse.sqlite3"), LocalBlobStore(tmp_path), ttl_seconds=3600)
    live = results.save(b"live")
    directory = tmp_path / "results"
    temp = directory / ".leftover.jpg.abc.tmp"
    temp.write_bytes(b"x")
    fresh = directory / ("C" * 32 + ".jpg")  # maybe a save in flight right now
    fresh.write_bytes(b"x")
    os.utime(temp, (real_now - ORPHAN_GRACE_SECONDS - 10,) * 2)
    assert results.cleanup(now=real_now) == 1
    assert sorted(p.name for p in directory.iterdir()) == sorted([f"{live}.jpg", fresh.name])


def test_result_whose_blob_vanished_is_not_found(results: ResultStore) -> None:
    token = results.save(b"jpeg")
    results.blobs.delete(blob_name(token))
    assert results.read(token) is None


def test_a_blob_folder_is_listed_in_name_order_a_window_at_a_time(backend: Backend) -> None:
    names = [f"paged/{n:02d}-{tag}.bin" for n, tag in enumerate("qwertyuiop")]
    for name in reversed(names):
        backend.blobs.put(name, b"x")
    assert [blob.name for blob in backend.blobs.list("paged")] == names
    assert [blob.name for blob in backend.blobs.list("paged", limit=4)] == names[:4]
    assert [blob.name for blob in backend.blobs.list("paged", after=names[3], limit=4)] == names[4:8]
    assert [blob.name for blob in backend.blobs.list("paged", after=names[7], limit=4)] == names[8:]
    assert backend.blobs.list("paged", after=names[-1], limit=4) == []


class ListingsSeen:
    """The backend's real blob store, with every list() call's answer written down."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.kind = blobs.kind
        self.pages: list[list[str]] = []

    def list(self, folder: str, after: str = "", limit: int | None = None) -> list[BlobInfo]:
        page = self.blobs.list(folder, after=after, limit=limit)
        self.pages.append([blob.name for blob in page])
        return page

    def __getattr__(self, name: str) -> object:
        return getattr(self.blobs, name)


def test_the_orphan_sweep_lists_one_page_per_cleanup_and_reaches_every_orphan_in_a_pass(backend: Backend) -> None:
    real_now = time.time()  # blob ages are real time
    seen = ListingsSeen(backend.blobs)
    results = ResultStore(backend.open_db(), seen, ttl_seconds=10 * ORPHAN_GRACE_SECONDS, orphan_page=3)  # type: ignore[arg-type]
    live = {blob_name(results.save(b"live")) for _ in range(5)}
    orphans = {blob_name(token) for token in ("A" * 32, "M" * 32, "z" * 32, "_" * 32)}  # saves killed halfway
    for name in orphans:
        backend.blobs.put(name, b"x")
    later = real_now + ORPHAN_GRACE_SECONDS + 10

    removed = [results.cleanup(now=later) for _ in range(3)]  # 9 blobs, 3 a page: one pass
    assert sum(removed) == len(orphans)
    assert [len(page) for page in seen.pages] == [3, 3, 3]  # each cleanup looked at one page, none twice
    assert {blob.name for blob in backend.blobs.list("results")} == live

    # An orphan left behind the sweep's place is found on its next pass, which starts over.
    late = blob_name("B" * 32)
    backend.blobs.put(late, b"x")
    while late in {blob.name for blob in backend.blobs.list("results")}:
        results.cleanup(now=later)
        assert len(seen.pages) <= 3 + 4, "the sweep never came back to the folder's start"
    assert all(len(page) <= 3 for page in seen.pages)
    assert {blob.name for blob in backend.blobs.list("results")} == live
    assert all(results.read(name.removeprefix("results/").removesuffix(".jpg")) == b"live" for name in live)


def _refusing_blobs(backend: Backend, tmp_path: Path) -> BlobStore:
    """A blob store of the backend's kind that fails every put."""
    if backend.scaled:
        return S3BlobStore("s3://no-such-bucket-here/facefuse", backend.env["FACEFUSE_S3_ENDPOINT_URL"])
    (tmp_path / "refusing").mkdir()
    (tmp_path / "refusing" / "results").write_bytes(b"a file where the folder should be")
    return LocalBlobStore(tmp_path / "refusing")


def test_a_save_whose_blob_fails_leaves_no_row(backend: Backend, clock: Clock, tmp_path: Path) -> None:
    results = ResultStore(backend.open_db(), _refusing_blobs(backend, tmp_path), ttl_seconds=3600, clock=clock)
    with pytest.raises(Exception):
        results.save(b"jpeg")
    assert results.count() == 0


def test_a_save_whose_row_fails_leaves_no_blob(backend: Backend, clock: Clock) -> None:
    db = backend.open_db()
    with db.transaction() as conn:
        conn.execute("DROP TABLE results")  # the insert fails, whatever the database
    results = ResultStore(db, backend.blobs, ttl_seconds=3600, clock=clock)
    with pytest.raises(Exception):
        results.save(b"jpeg")
    assert backend.blobs.list("results") == []
