"""The real service, started as a user starts it (`facefuse serve`), on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import components
import httpx
import pytest

from facefuse.storage.blobs import BlobStore
from facefuse.storage.database import Database

REPO = Path(__file__).resolve().parents[1]
BUNDLED_FACES = REPO / "tests" / "fixtures" / "faces"
FACEFUSE = [sys.executable, "-m", "facefuse.cli"]
DEMO_TEMPLATE = "gjw4tjeloaba2psk973"


def _faces_dir() -> Path:
    """FACEFUSE_FACES_DIR if set, else the full set ../shared/faces where it exists (CI),
    else the small bundled set of tests/fixtures/faces, so a plain clone runs the tests."""
    if os.environ.get("FACEFUSE_FACES_DIR"):
        return Path(os.environ["FACEFUSE_FACES_DIR"])
    shared = REPO.parent / "shared" / "faces"
    return shared if (shared / "MANIFEST.tsv").is_file() else BUNDLED_FACES


FACES = _faces_dir()
FULL_SET = FACES != BUNDLED_FACES
needs_full_set = pytest.mark.skipif(
    not FULL_SET,
    reason="needs the full photo set (../shared/faces or FACEFUSE_FACES_DIR); only tests/fixtures/faces is here",
)


def face(name: str) -> Path:
    """The photo `name` of FACES; the calling test skips, naming it, when this set lacks it."""
    path = FACES / name
    if not path.is_file():
        pytest.skip(
            f"{name} is only in the full photo set (../shared/faces or FACEFUSE_FACES_DIR); {FACES} does not have it"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    base_url: str
    data_dir: Path
    api_key: str
    api_secret: str
    process: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"api_key": self.api_key, "api_secret": self.api_secret}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `facefuse ARGS` against this server's data dir."""
        return subprocess.run(
            [*FACEFUSE, *args], env=self.env, capture_output=True, text=True, check=check, timeout=120
        )

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    known_key: tuple[str, str] | None = None,
) -> RunningServer:
    """Start `facefuse serve`; on a fresh data dir it prints the first key, else pass known_key."""
    port = free_port()
    env = {
        **os.environ,
        "FACEFUSE_DATA_DIR": str(data_dir),
        "FACEFUSE_PORT": str(port),
        "FACEFUSE_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = open(data_dir.parent / f"server-{port}.log", "w")
    process = subprocess.Popen([*FACEFUSE, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    key, secret = known_key or ("", "")
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log.name}")
        if not (key and secret):
            line = process.stdout.readline()
            if match := re.search(r"api_key=(\S+)", line):
                key = match.group(1)
            if match := re.search(r"api_secret=(\S+)", line):
                secret = match.group(1)
            if not (key and secret):
                continue
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                return RunningServer(base_url, data_dir, key, secret, process, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become ready in 120 s")


def stop_server(server: RunningServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()


# FACEFUSE_TEST_STORAGE=scaled runs the tests of the session server on PostgreSQL + S3
# (`make test` runs the black-box API tests so a second time).
TEST_STORAGE = os.environ.get("FACEFUSE_TEST_STORAGE", "embedded")


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("facefuse") / "data"
    running = start_server(data_dir, extra_env=scaled_env(request) if TEST_STORAGE == "scaled" else None)
    yield running
    stop_server(running)


def scaled_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings of a server on a fresh PostgreSQL database and S3 bucket of this session."""
    postgres: components.PostgresServer = request.getfixturevalue("postgres")
    s3: components.MotoServer = request.getfixturevalue("s3")
    return {
        **s3.env,
        "FACEFUSE_DATABASE_URL": postgres.create_database(),
        "FACEFUSE_STORAGE_URL": f"s3://{s3.create_bucket()}/facefuse",
    }


@pytest.fixture(params=[False, True], ids=["one core", "a spare core"])
def spare_core(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run the test with and without a spare core for a job's pieces (facefuse.parallel)."""
    from facefuse import parallel

    parallel.use_spare_cores(lambda: request.param)
    yield request.param
    parallel.use_spare_cores(lambda: False)


# ------------------------------------------------------------------ scaled mode: PostgreSQL + S3


@pytest.fixture(scope="session")
def postgres() -> Iterator[components.PostgresServer]:
    """A PostgreSQL server from Debian's packages (.ci/run installs it), for the whole session."""
    if components.postgres_bin() is None:
        pytest.skip(f"PostgreSQL's server is not installed (no initdb under {components.POSTGRES_ROOTS})")
    server = components.start_postgres()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def s3() -> Iterator[components.MotoServer]:
    """moto's S3 server on a loopback port; the standard AWS variables point boto3 at it."""
    server = components.start_moto()
    saved = {name: os.environ.get(name) for name in server.env}
    os.environ.update(server.env)
    yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@dataclass
class Backend:
    """Where the stores keep their state: `embedded` (SQLite + data dir) or `scaled` (PostgreSQL + S3)."""

    name: str
    open_db: Callable[[], Database]  # another process's view: its own connections to the same database
    blobs: BlobStore
    env: dict[str, str]  # the FACEFUSE_* settings (and S3 credentials) a server on this backend needs

    @property
    def scaled(self) -> bool:
        return self.name == "scaled"


def make_backend(request: pytest.FixtureRequest, name: str, data_dir: Path) -> Backend:
    from facefuse.storage.blobs import LocalBlobStore
    from facefuse.storage.db import SqliteDatabase

    if name == "embedded":
        path = data_dir / "facefuse.sqlite3"
        return Backend(name, lambda: SqliteDatabase(path), LocalBlobStore(data_dir), {})
    from facefuse.storage.postgres import PostgresDatabase
    from facefuse.storage.s3 import S3BlobStore

    env = scaled_env(request)
    url, storage = env["FACEFUSE_DATABASE_URL"], env["FACEFUSE_STORAGE_URL"]
    return Backend(name, lambda: PostgresDatabase(url), S3BlobStore(storage, env["FACEFUSE_S3_ENDPOINT_URL"]), env)


@pytest.fixture(params=["embedded", "scaled"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The test runs once on each backend."""
    return make_backend(request, request.param, tmp_path / "data")
