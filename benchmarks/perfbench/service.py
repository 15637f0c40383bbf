"""The service under test: `facefuse serve` started on a free port of 127.0.0.1 with the
default settings but a given number of work processes, and what its processes use."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Service:
    process: subprocess.Popen[str]
    base_url: str
    auth: dict[str, str]
    cold_start_s: float

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each work process (they hold the models and do the fusion)."""
        workers = [pid for pid in child_pids(self.process.pid) if b"spawn_main" in _cmdline(pid)]
        return [rss_mb(pid) for pid in workers]

    def http_rss_mb(self) -> float:
        """Resident memory of the HTTP process (event loop, no models)."""
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_service(
    data_dir: Path, workers: int, key: tuple[str, str] | None, extra_env: dict[str, str] | None = None
) -> Service:
    """`facefuse serve` with `workers` work processes; waits for /readyz. Without `key`, the
    data dir is fresh and the key the first start prints is read from its output."""
    port = free_port()
    env = {
        **os.environ,
        "FACEFUSE_DATA_DIR": str(data_dir),
        "FACEFUSE_PORT": str(port),
        "FACEFUSE_HOST": "127.0.0.1",
        "FACEFUSE_WORKERS": str(workers),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "facefuse.cli", "serve"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        return _wait_ready(process, f"http://127.0.0.1:{port}", key, started)
    except BaseException:
        process.kill()
        process.wait()
        raise


def _wait_ready(process: subprocess.Popen[str], base_url: str, key: tuple[str, str] | None, started: float) -> Service:
    api_key, secret = key or ("", "")
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited during start-up")
        if not (api_key and secret):
            line = process.stdout.readline()
            api_key = m.group(1) if (m := re.search(r"api_key=(\S+)", line)) else api_key
            secret = m.group(1) if (m := re.search(r"api_secret=(\S+)", line)) else secret
            continue
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
                return Service(
                    process, base_url, {"api_key": api_key, "api_secret": secret}, time.perf_counter() - started
                )
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError("the service did not become ready in 120 s")


def register_template(data_dir: Path, photo: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir), **(extra_env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "facefuse.cli", "templates", "add", str(photo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return str(json.loads(done.stdout)["template_id"])


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used so far by the HTTP process, the work processes and this load
    generator (it shares the cores), the machine's idle time, and the time the host ran
    something else on this machine's CPUs (steal): where a loaded run's time went."""

    http_s: float
    work_s: float
    client_s: float
    idle_s: float
    steal_s: float = 0.0

    @classmethod
    def now(cls, service: Service) -> CpuUse:
        children = sum(cpu_seconds(pid) for pid in child_pids(service.process.pid))
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()  # cpu user nice system idle ...
        ticks = os.sysconf("SC_CLK_TCK")
        steal = int(fields[8]) if len(fields) > 8 else 0
        return cls(
            cpu_seconds(service.process.pid), children, time.process_time(), int(fields[4]) / ticks, steal / ticks
        )

    def minus(self, before: CpuUse) -> CpuUse:
        return CpuUse(
            self.http_s - before.http_s,
            self.work_s - before.work_s,
            self.client_s - before.client_s,
            self.idle_s - before.idle_s,
            self.steal_s - before.steal_s,
        )

    def idle_pct(self) -> float:
        busy = self.http_s + self.work_s + self.client_s
        return 100 * self.idle_s / max(busy + self.idle_s, 1e-9)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads (finished ones too), to the nanosecond:
    its CPU-time clock. /proc's utime + stime count 10 ms ticks, which a short run rounds
    down to nothing. 0 once the process is gone."""
    clock = ctypes.c_int()
    if _libc().clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return 0.0
    try:
        return time.clock_gettime(clock.value)
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Child processes started by any thread of `pid`."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
