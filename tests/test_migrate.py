"""`facefuse migrate`: an embedded install copied into PostgreSQL + S3 (moto's server), verified,
safe to run twice, and served from there by a scaled node."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import DEMO_TEMPLATE, FACEFUSE, face, start_server, stop_server
from test_api import b64, fuse_body

from facefuse.storage.blobs import LocalBlobStore
from facefuse.storage.db import SqliteDatabase
from facefuse.storage.postgres import PostgresDatabase
from facefuse.storage.results import ResultStore
from facefuse.storage.s3 import S3BlobStore

TEMPLATE_PHOTO = "deepface__img5.jpg"
SELFIE = "face_recognition__examples_obama.jpg"


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir), **(env or {})}
    return subprocess.run([*FACEFUSE, *args], env=full, capture_output=True, text=True, timeout=300)


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    """An embedded install: keys (one revoked, one limited), two templates, a live and an expired result."""
    data = tmp_path / "data"
    ok(run(data, "keys", "create", "--name", "admin", "--admin", "--json"))
    ok(run(data, "keys", "create", "--name", "limited", "--qps", "2", "--daily-quota", "50"))
    gone = json.loads(ok(run(data, "keys", "create", "--name", "gone", "--json")).stdout)["api_key"]
    ok(run(data, "keys", "revoke", gone))
    ok(run(data, "templates", "add", str(face(TEMPLATE_PHOTO)), "--id", "migratedtemplate01"))
    results = ResultStore(SqliteDatabase(data / "facefuse.sqlite3"), LocalBlobStore(data), ttl_seconds=3600)
    results.save(b"\xff\xd8 live result")
    expired = ResultStore(SqliteDatabase(data / "facefuse.sqlite3"), LocalBlobStore(data), ttl_seconds=-1)
    expired.save(b"\xff\xd8 expired result")
    return data


def test_migrate_copies_verifies_and_is_safe_to_run_twice(embedded: Path, postgres, s3) -> None:
    url, storage = postgres.create_database(), f"s3://{s3.create_bucket()}/moved"
    first = json.loads(ok(run(embedded, "migrate", "--to-database", url, "--to-storage", storage, "--json")).stdout)
    assert {name: (c["source"], c["copied"]) for name, c in first["tables"].items()} == {
        "api_keys": (3, 3),
        "key_usage": (0, 0),
        "templates": (1, 1),
        "results": (1, 1),  # the expired one stays behind
    }
    assert first["blobs"] == {"copied": 2, "present": 0, "verified": 2}

    again = json.loads(ok(run(embedded, "migrate", "--to-database", url, "--to-storage", storage, "--json")).stdout)
    assert all(c["copied"] == 0 and c["present"] == c["source"] for c in again["tables"].values())
    assert again["blobs"] == {"copied": 0, "present": 2, "verified": 2}

    target = PostgresDatabase(url)
    source = SqliteDatabase(embedded / "facefuse.sqlite3")
    for table in ("api_keys", "templates"):
        columns = "api_key, secret_hash, name, admin, qps, daily_quota, created_at, revoked_at"
        if table == "templates":
            columns = "template_id, revision, name, format, width, height, face_count, faces_json, created_at"
        assert [tuple(r) for r in target.query(f"SELECT {columns} FROM {table} ORDER BY rowid")] == [
            tuple(r) for r in source.query(f"SELECT {columns} FROM {table} ORDER BY rowid")
        ]
    blobs = S3BlobStore(storage, s3.endpoint)
    assert sorted(b.name.split("/")[0] for b in blobs.list("templates") + blobs.list("results")) == [
        "results",
        "templates",
    ]


def test_an_interrupted_or_tampered_target_is_mended_by_the_next_run(embedded: Path, postgres, s3) -> None:
    url, storage = postgres.create_database(), f"s3://{s3.create_bucket()}/moved"
    ok(run(embedded, "migrate", "--to-database", url, "--to-storage", storage))
    target, blobs = PostgresDatabase(url), S3BlobStore(storage, s3.endpoint)
    with target.transaction() as conn:  # as if the first run died half way
        conn.execute("DELETE FROM results")
        conn.execute("DELETE FROM api_keys WHERE name = 'limited'")
    (template_blob,) = blobs.list("templates")
    blobs.put(template_blob.name, b"not the photo")  # and a blob went wrong
    mended = json.loads(ok(run(embedded, "migrate", "--to-database", url, "--to-storage", storage, "--json")).stdout)
    assert mended["tables"]["results"]["copied"] == 1 and mended["tables"]["api_keys"]["copied"] == 1
    assert mended["blobs"]["copied"] == 1 and mended["blobs"]["verified"] == 2
    assert blobs.get(template_blob.name) == face(TEMPLATE_PHOTO).read_bytes()


def test_a_target_holding_another_template_under_the_same_id_is_refused(embedded: Path, postgres, s3) -> None:
    url, storage = postgres.create_database(), f"s3://{s3.create_bucket()}/moved"
    ok(run(embedded, "migrate", "--to-database", url, "--to-storage", storage))
    with PostgresDatabase(url).transaction() as conn:
        conn.execute("UPDATE templates SET revision = 'someotherrevisio'")
    refused = run(embedded, "migrate", "--to-database", url, "--to-storage", storage)
    assert refused.returncode != 0 and "migratedtemplate01" in refused.stderr and "Traceback" not in refused.stderr


def test_a_migrated_install_is_served_by_a_scaled_node(tmp_path: Path, postgres, s3) -> None:
    data = tmp_path / "embedded"
    embedded = start_server(data, extra_env={"FACEFUSE_WORKERS": "1"})
    try:
        with embedded.client() as client:
            answer = client.post("/v3/facefuse", params=embedded.auth, json=fuse_body(b64(SELFIE), rsp="url"))
            assert answer.status_code == 200, answer.text
            link = answer.json()["media_info_list"][0]["media_data"]
            before = client.get(link).content
    finally:
        stop_server(embedded)
    url, storage = postgres.create_database(), f"s3://{s3.create_bucket()}/moved"
    ok(run(data, "migrate", "--to-database", url, "--to-storage", storage))
    env = {**s3.env, "FACEFUSE_DATABASE_URL": url, "FACEFUSE_STORAGE_URL": storage, "FACEFUSE_WORKERS": "1"}
    node = start_server(tmp_path / "node", extra_env=env, known_key=(embedded.api_key, embedded.api_secret))
    try:
        with node.client() as client:
            assert client.get("/v3/results/" + link.rsplit("/", 1)[1]).content == before
            fused = client.post("/v3/facefuse", params=node.auth, json=fuse_body(b64(SELFIE), DEMO_TEMPLATE))
            assert fused.status_code == 200, fused.text
        assert PostgresDatabase(url).scalar("SELECT count(*) FROM api_keys") == 1  # no second first key
    finally:
        stop_server(node)
    assert SqliteDatabase(data / "facefuse.sqlite3").scalar("SELECT count(*) FROM results") == 1  # left as it was
