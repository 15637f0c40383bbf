"""Real PostgreSQL, S3 (moto's server) and nginx processes on 127.0.0.1, for tests and benchmarks.

PostgreSQL comes from Debian's packages (/usr/lib/postgresql/<version>/bin). It refuses
to run as root, and CI runs as root: then initdb and pg_ctl run as the `postgres`
system user, in a temporary directory it owns. Each server listens on a free loopback
port only, with password authentication, so URLs are the ones a deployment uses.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

POSTGRES_ROOTS = Path("/usr/lib/postgresql")
POSTGRES_USER = "postgres"  # the system user Debian's package creates
DB_USER = "facefuse"
START_TIMEOUT_SECONDS = 60
S3_ACCESS = {"AWS_ACCESS_KEY_ID": "facefuse-test", "AWS_SECRET_ACCESS_KEY": "facefuse-test-secret"}
S3_REGION = "us-east-1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(POSTGRES_ROOTS.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def nginx_bin() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


def _as_server_user(command: Sequence[str]) -> list[str]:
    return ["runuser", "-u", POSTGRES_USER, "--", *command] if os.geteuid() == 0 else list(command)


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in its own temporary directory."""

    bin_dir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facefuse-pg-")))
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> int:
        """The postmaster's process id (its sessions are its children)."""
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        (self.root / "pw").write_text(self.password)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(POSTGRES_USER)
            for path in (self.root, self.root / "pw"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", DB_USER, "--pwfile", str(self.root / "pw")]
        command += ["--auth", "scram-sha-256", "-E", "UTF8", "--no-sync", "--locale", "C"]
        subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            **self.settings,
        }
        flags = " ".join(f"-c {name}={value}" for name, value in options.items())
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", flags, "-w"]
        command += ["-t", str(START_TIMEOUT_SECONDS), "start"]
        subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=START_TIMEOUT_SECONDS + 10)

    def stop(self, mode: str = "fast") -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
        subprocess.run(_as_server_user(command), capture_output=True, timeout=START_TIMEOUT_SECONDS + 10)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; answers its URL."""
        import psycopg

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(**settings: str) -> PostgresServer:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL server under {POSTGRES_ROOTS}")
    server = PostgresServer(bin_dir, settings=dict(settings))
    try:
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(server.root, ignore_errors=True)
        raise
    return server


@dataclass
class MotoServer:
    """moto's S3 server: a process speaking the S3 wire protocol on a loopback port."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a facefuse process needs to reach this endpoint (credentials as for real S3)."""
        return {**S3_ACCESS, "AWS_DEFAULT_REGION": S3_REGION, "FACEFUSE_S3_ENDPOINT_URL": self.endpoint}

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                httpx.get(self.endpoint, timeout=1, trust_env=False)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def create_bucket(self, name: str | None = None) -> str:
        """A new bucket; answers its name."""
        import boto3

        name = name or f"facefuse-{secrets.token_hex(6)}"
        client = boto3.session.Session(region_name=S3_REGION, **_lower(S3_ACCESS)).client(
            "s3", endpoint_url=self.endpoint
        )
        client.create_bucket(Bucket=name)
        return name


def _lower(access: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": access["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": access["AWS_SECRET_ACCESS_KEY"]}


def start_moto() -> MotoServer:
    server = MotoServer()
    server.start()
    return server


NGINX_SITE = Path(__file__).resolve().parents[1] / "deploy" / "nginx-facefuse.conf"


def render_site(site: str, nodes: Sequence[str], port: int) -> str:
    """The shipped site config with these nodes (host:port) and this listening port."""
    lines = [line for line in site.splitlines() if not line.strip().startswith("server 10.0.0.")]
    at = next(i for i, line in enumerate(lines) if line.startswith("upstream facefuse_nodes"))
    servers = [f"    server {node} max_fails=1 fail_timeout=5s;" for node in nodes]
    lines[at + 1 : at + 1] = servers
    text = "\n".join(lines)
    assert "    listen 80;" in text
    return text.replace("    listen 80;", f"    listen 127.0.0.1:{port};")


@dataclass
class NginxServer:
    """nginx from Debian's packages with deploy/nginx-facefuse.conf in front of the given nodes."""

    nodes: Sequence[str]
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="facefuse-nginx-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        (self.root / "facefuse.conf").write_text(render_site(NGINX_SITE.read_text(), self.nodes, self.port))
        temp = " ".join(
            f"{kind}_temp_path {self.root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""  # its workers read and write only this directory
        main = (
            f"{user}worker_processes 1;\npid {self.root / 'nginx.pid'};\nerror_log {self.root / 'error.log'};\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log {self.root / 'access.log'};\n  {temp}\n"
            f"  include {self.root / 'facefuse.conf'};\n}}\n"
        )
        path = self.root / "nginx.conf"
        path.write_text(main)
        return path

    def start(self) -> None:
        binary = nginx_bin()
        if binary is None:
            raise FileNotFoundError("nginx is not installed")
        config = self.write_config()
        command = [binary, "-p", str(self.root), "-e", str(self.root / "error.log"), "-c", str(config)]
        self.process = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}; see {self.root / 'error.log'}")
            try:
                httpx.get(f"{self.base_url}/healthz", timeout=2, trust_env=False)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def retried(self) -> int:
        """How many requests nginx sent on to another node (its error log says so for each)."""
        log = (self.root / "error.log").read_text(errors="replace")
        return log.count("while reading response header from upstream")
