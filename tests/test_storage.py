"""Storage: the SQLite database, atomic files and result links, on real files in tmp_path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facefuse.storage import files
from facefuse.storage.db import SCHEMA_VERSION, Database, SchemaTooNewError, iso_utc
from facefuse.storage.files import write_atomic
from facefuse.storage.results import ORPHAN_GRACE_SECONDS, TOKEN_RE, ResultStore


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "data" / "facefuse.sqlite3")
    yield database
    database.close()


# ------------------------------------------------------------------ database


def test_database_is_wal_durable_and_versioned(db: Database) -> None:
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    assert db.query_one("PRAGMA synchronous")[0] == 2  # FULL
    assert db.query_one("PRAGMA foreign_keys")[0] == 1
    assert db.query_one("PRAGMA busy_timeout")[0] >= 1000
    assert db.schema_version == SCHEMA_VERSION
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"api_keys", "templates", "results"} <= tables
    db.ping()


def test_reopening_keeps_data_and_a_newer_schema_is_refused(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO results VALUES ('t', 1, 2)")
    again = Database(db.path)
    assert again.query_one("SELECT count(*) FROM results")[0] == 1
    with again.transaction() as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError):
        Database(db.path)
    again.close()


def test_transaction_rolls_back_on_error_and_nests_as_savepoint(db: Database) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO results VALUES ('a', 1, 2)")
            raise RuntimeError("boom")
    with db.transaction() as conn:
        conn.execute("INSERT INTO results VALUES ('b', 1, 2)")
        with pytest.raises(sqlite3.IntegrityError):
            with db.transaction() as inner:
                inner.execute("INSERT INTO results VALUES ('c', 1, 2)")
                inner.execute("INSERT INTO results VALUES ('b', 1, 2)")
    assert [r[0] for r in db.query("SELECT token FROM results")] == ["b"]


def test_threads_each_get_a_connection_and_write_together(db: Database) -> None:
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


def test_processes_open_a_fresh_database_and_write_at_once(tmp_path: Path) -> None:
    """Several processes migrate the same new file and save results into it at the same moment."""
    script = (
        "import sys; from pathlib import Path\n"
        "from facefuse.storage.db import Database\n"
        "from facefuse.storage.results import ResultStore\n"
        "store = ResultStore(Database(Path(sys.argv[1])), Path(sys.argv[2]), 3600)\n"
        "for _ in range(30): store.save(b'x' * 1000)\n"
    )
    db_path, results_dir = tmp_path / "shared.sqlite3", tmp_path / "results"
    children = [subprocess.Popen([sys.executable, "-c", script, str(db_path), str(results_dir)]) for _ in range(4)]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0, 0]
    db = Database(db_path)
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
def results(db: Database, tmp_path: Path, clock: Clock) -> ResultStore:
    return ResultStore(db, tmp_path / "results", ttl_seconds=3600, clock=clock)


def test_result_tokens_are_long_random_and_url_safe(results: ResultStore) -> None:
    tokens = {results.save(b"jpeg") for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert TOKEN_RE.fullmatch(token) and len(token) == 32  # 192 bits
        path = results.path_for(token)
        assert path is not None and path.read_bytes() == b"jpeg"
        assert path.parent == results.results_dir


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
    assert results.path_for(token) is None


def test_unknown_token_finds_nothing(results: ResultStore) -> None:
    assert results.path_for("A" * 32) is None


def test_results_expire_and_cleanup_removes_rows_and_files(results: ResultStore, clock: Clock) -> None:
    old = results.save(b"old")
    clock.now += 1800
    young = results.save(b"young")
    old_path = results.path_for(old)
    assert old_path is not None
    clock.now += 1800  # old is exactly ttl seconds old: expired
    assert results.path_for(old) is None
    assert results.path_for(young) is not None
    assert results.cleanup() == 1
    assert not old_path.exists() and results.count() == 1
    assert results.cleanup(now=clock.now + 1800) == 1
    assert results.count() == 0 and list(results.results_dir.iterdir()) == []


def test_cleanup_sweeps_old_orphan_files_only(results: ResultStore, clock: Clock) -> None:
    real_now = clock.now = time.time()  # file ages are real time
    live = results.save(b"live")
    directory = results.results_dir
    orphan = directory / ("B" * 32 + ".jpg")  # a save killed between its file and its row
    orphan.write_bytes(b"x")
    temp = directory / ".leftover.jpg.abc.tmp"
    temp.write_bytes(b"x")
    fresh = directory / ("C" * 32 + ".jpg")  # maybe a save in flight right now
    fresh.write_bytes(b"x")
    for path in (orphan, temp):
        os.utime(path, (real_now - ORPHAN_GRACE_SECONDS - 10,) * 2)
    assert results.cleanup(now=real_now) == 2
    assert sorted(p.name for p in directory.iterdir()) == sorted([f"{live}.jpg", fresh.name])


def test_result_whose_file_vanished_is_not_found(results: ResultStore) -> None:
    token = results.save(b"jpeg")
    path = results.path_for(token)
    assert path is not None
    path.unlink()
    assert results.path_for(token) is None
