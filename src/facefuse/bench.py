"""Performance benchmark: `facefuse bench [--faces-dir DIR] [--out bench.json] [--quick]`
(also `python benchmarks/perf.py`); docs/performance.md explains every number.

In one run: the physical floor (base64 decode + full JPEG decode + face detection and
landmarks + JPEG encode of a result-sized image, nothing else; one run just before each
timed request of the same input) and the real service (`facefuse serve`, default
settings) on 127.0.0.1 for the same inputs: latency p50/p95/p99 with base64 and url
answers, throughput at concurrency 1/4/16 with 1 and 2 workers (both services up, runs
alternating) and where its CPU went, back-pressure beyond the queue, /healthz under load,
resident memory per worker after warm-up and after 1,000 requests, cold start, and the
machine's own two-core scaling (a work process's job alone and on every core at once,
no HTTP), measured between the loaded runs. Loopback only, bounded request counts. The
photos come from --faces-dir (never shipped); the report is printed with each target of
the issue marked MET or MISS, and written as JSON.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import functools
import io
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from PIL import Image

from facefuse.fusion.fuse import FuseOptions, fuse_prepared, prepare_template
from facefuse.media.decode import decode_base64, decode_image
from facefuse.media.encode import encode_jpeg
from facefuse.settings import Settings
from facefuse.vision.detect import detect_faces
from facefuse.workpool import freeze_startup_objects, single_threaded_libraries, tune_for_compute, usable_cores

USER_PHOTO = "deepface__img2.jpg"  # 1536x1152 frontal portrait
TEMPLATE_PHOTO = "face_recognition__examples_knn_examples_train_biden_biden2.jpg"
SIZES_MP = (0.25, 1.0, 4.0, 16.0)
MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096
BUSY_RETRY_AFTER_S = 1.0  # what the service's Retry-After header says on a busy answer


@dataclass
class Input:
    nominal: float
    megapixels: float
    width: int
    height: int
    quality: int
    jpeg: bytes

    @property
    def label(self) -> str:
        return f"{self.nominal:g} MP"


def make_input(photo: Image.Image, megapixels: float) -> Input:
    """The photo scaled to about `megapixels`, within 4096 px a side and 2 MB."""
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    scale = min(scale, MAX_SIDE / max(photo.size))
    size = (round(photo.width * scale), round(photo.height * scale))
    resized = photo.resize(size, Image.LANCZOS)
    for quality in (92, 88, 84, 80, 75, 70, 60, 50):
        buffer = io.BytesIO()
        resized.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= MAX_BYTES:
            return Input(megapixels, size[0] * size[1] / 1e6, size[0], size[1], quality, buffer.getvalue())
    raise RuntimeError("could not fit the input into 2 MB")


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples)
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99)), "n": len(samples)}


def floor_once(text: str, result_rgb: np.ndarray, quality: int) -> float:
    """The least any request costs, in ms: base64 text -> bytes -> full-size pixels ->
    faces and landmarks, plus encoding a result-sized image (the template's own pixels) as
    the service does (quality 95, 4:4:4). Nothing else: no fusion, no HTTP."""
    started = time.perf_counter()
    rgb = decode_image(decode_base64(text))
    faces = detect_faces(rgb)
    encode_jpeg(result_rgb, quality)
    elapsed = (time.perf_counter() - started) * 1000
    assert faces, "the benchmark photo must have a face"
    return elapsed


class ComputeProbe:
    """The machine's own scaling, no HTTP: a work process's job (decode, detect, fuse,
    encode the 1 MP input into the template) in one process alone, then in one process
    per core at once. Cores that share caches, memory bandwidth or a physical core make
    each job slower when all compute; no pool of work processes can give more than that
    over one. Measured in rounds between the service's loaded runs: on this kind of
    machine it moves from minute to minute (1.53, 1.65, 1.97 in three runs in a row)."""

    def __init__(self, item: Input, template_jpeg: bytes, runs: int) -> None:
        self._cores = sorted(usable_cores()) or list(range(os.cpu_count() or 1))
        self.cores = len(self._cores)
        self._job = (base64.b64encode(item.jpeg).decode(), template_jpeg, runs)
        single_threaded_libraries()  # as the service's work processes
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.cores, mp_context=context, initializer=_start_probe_process,
                                         initargs=(context.Barrier(self.cores),))
        self.alone: list[float] = []
        self.together: list[list[float]] = [[] for _ in range(self.cores)]

    def round(self) -> None:
        """Jobs in one process, then in every process at once, each on a core of its own (as the
        service's work processes, one per core, run; one alone is not pinned either)."""
        self.alone += self._pool.submit(_compute_runs, *self._job, None).result()
        futures = [self._pool.submit(_compute_runs, *self._job, core) for core in self._cores]
        for times, future in zip(self.together, futures):
            times += future.result()

    def close(self) -> None:
        self._pool.shutdown()

    def result(self) -> dict[str, object]:
        alone_ms = float(np.median(self.alone))
        together_ms = [float(np.median(t)) for t in self.together]
        return {"cores": self.cores, "alone_ms_p50": alone_ms, "together_ms_p50": together_ms,
                "speedup": sum(alone_ms / t for t in together_ms)}


_barrier: Any = None
_cores: set[int] = set()


def _start_probe_process(barrier: Any) -> None:
    global _barrier, _cores
    _barrier, _cores = barrier, usable_cores()


def _compute_runs(text: str, template_jpeg: bytes, runs: int, core: int | None) -> list[float]:
    """ms per job, `runs` jobs after a warm-up; with a core, all of this process's threads on
    it and only when every process of the pool is warm too (each holds one such call)."""
    tune_for_compute()
    cores = {core} if core is not None else _cores
    if cores and hasattr(os, "sched_setaffinity"):
        for thread in os.listdir("/proc/self/task"):  # mediapipe's threads too, started earlier
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(thread), cores)
    template_rgb = decode_image(template_jpeg)
    prepared = prepare_template(template_rgb, detect_faces(template_rgb)[0])
    quality, options = Settings().jpeg_quality, FuseOptions()

    def once() -> float:
        started = time.perf_counter()
        rgb = decode_image(decode_base64(text))
        fused = fuse_prepared(prepared, rgb, detect_faces(rgb)[0], options)
        encode_jpeg(fused, quality)
        return (time.perf_counter() - started) * 1000

    for _ in range(3):
        once()
    if core is not None:
        _barrier.wait(timeout=120)
    return [once() for _ in range(runs)]


# ------------------------------------------------------------------ the service

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


def start_service(data_dir: Path, workers: int, key: tuple[str, str] | None) -> Service:
    """`facefuse serve` on a free port of 127.0.0.1 with the default settings but `workers`
    work processes; waits for /readyz."""
    port = free_port()
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir), "FACEFUSE_PORT": str(port),
           "FACEFUSE_HOST": "127.0.0.1", "FACEFUSE_WORKERS": str(workers), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "facefuse.cli", "serve"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        return _wait_ready(process, f"http://127.0.0.1:{port}", key, started)
    except BaseException:
        process.kill()
        process.wait()
        raise


def _wait_ready(process: subprocess.Popen[str], base_url: str, key: tuple[str, str] | None,
                started: float) -> Service:
    api_key, secret = key or ("", "")
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited during start-up")
        if not (api_key and secret):
            line = process.stdout.readline()
            api_key = (m.group(1) if (m := re.search(r"api_key=(\S+)", line)) else api_key)
            secret = (m.group(1) if (m := re.search(r"api_secret=(\S+)", line)) else secret)
            continue
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
                return Service(process, base_url, {"api_key": api_key, "api_secret": secret},
                               time.perf_counter() - started)
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError("the service did not become ready in 120 s")


def register_template(data_dir: Path, photo: Path) -> str:
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "facefuse.cli", "templates", "add", str(photo), "--json"],
                          env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout)["template_id"]


def fuse_body(item: Input, template_id: str, rsp: str) -> bytes:
    return json.dumps({"parameter": {"rsp_media_type": rsp, "faceFusePPType": template_id}, "extra": {},
                       "media_info_list": [{"media_data": base64.b64encode(item.jpeg).decode(),
                                            "media_profiles": {"media_data_type": "jpg"}}]}).encode()


class LoopbackClient:
    """One keep-alive HTTP/1.1 connection to the service over a plain socket.

    The load generator shares the two cores with the service, so whatever CPU it spends is
    taken from the work processes when both are busy: the request goes out in one
    sendmsg (head and body, no joined copy) and the answer is read straight into one
    buffer of its Content-Length. http.client took ~1.5 ms of CPU per 1 MP exchange under
    load, httpx ~2.4 ms."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._socket: socket.socket | None = None
        self._pending = b""  # bytes read past the end of the previous answer (none, normally)

    def request(self, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body); a connection the server closed is opened again once."""
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        parts = [(head + "\r\n").encode("ascii")] + ([body] if body else [])
        for attempt in (1, 2):
            connection = self._socket or self._connect()
            self._socket = None
            try:
                _send_all(connection, parts)
                status, keep_alive, data = self._read_answer(connection)
            except (OSError, ValueError):
                connection.close()
                self._pending = b""
                if attempt == 2:
                    raise
                continue
            if keep_alive:
                self._socket = connection
            else:
                connection.close()
            return status, data
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        connection = socket.create_connection((self.host, self.port), timeout=self.timeout)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _read_answer(self, connection: socket.socket) -> tuple[int, bool, bytes]:
        received = bytearray(self._pending)
        while (end := received.find(b"\r\n\r\n")) < 0:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            received += chunk
        lines = bytes(received[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.split(":", 1) for line in lines[1:])
        headers = {name.strip().lower(): value.strip() for name, value in headers.items()}
        if "content-length" not in headers:
            raise ValueError("an answer without Content-Length")
        length = int(headers["content-length"])
        data = bytearray(length)
        view = memoryview(data)
        already = received[end + 4:]
        taken = min(len(already), length)
        view[:taken] = already[:taken]
        self._pending = bytes(already[taken:])
        while taken < length:
            count = connection.recv_into(view[taken:])
            if not count:
                raise ConnectionError("the server closed the connection")
            taken += count
        return status, headers.get("connection", "").lower() != "close", bytes(data)

    def get(self, url_or_path: str) -> tuple[int, bytes]:
        parts = urllib.parse.urlsplit(url_or_path)
        return self.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> "LoopbackClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _send_all(connection: socket.socket, parts: list[bytes]) -> None:
    views = [memoryview(part) for part in parts]
    while views:
        sent = connection.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def post(client: LoopbackClient, service: Service, body: bytes, parse: bool = True) -> tuple[float, int]:
    """One fusion request: ms and status. A 200 is checked after the clock stops: parsed
    whole, or (parse=False, for the loaded runs, where the client's CPU is taken from the
    service) by its ends and its image's first bytes."""
    target = "/v3/facefuse?" + urllib.parse.urlencode(service.auth)
    started = time.perf_counter()
    status, data = client.request("POST", target, body)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status == 200 and (parse or not _is_base64_jpeg_answer(data)):
        _check_answer(client, orjson.loads(data))  # orjson: the client shares the cores
    return elapsed_ms, status


_BASE64_ANSWER_HEAD = re.compile(rb'^\{"parameter":\{[^{}]*\},"media_info_list":\[\{"media_data":"([A-Za-z0-9+/]{64})')
_BASE64_ANSWER_TAIL = b'","media_profiles":{"media_data_type":"jpg"}}]}'


def _is_base64_jpeg_answer(data: bytes) -> bool:
    """The answer's shape and its JPEG's first bytes, without parsing its ~0.5 MB (0.14 ms a
    parse): an answer that is not this is parsed whole and checked."""
    head = _BASE64_ANSWER_HEAD.match(data[:256])
    return (head is not None and data.endswith(_BASE64_ANSWER_TAIL)
            and base64.b64decode(head.group(1)).startswith(b"\xff\xd8\xff"))


def _check_answer(client: LoopbackClient, answer: dict) -> None:
    """A 200 must carry the JPEG (base64 out) or a link that serves it (url out, fetched)."""
    media = answer["media_info_list"][0]
    if media["media_profiles"]["media_data_type"] == "url":
        status, data = client.get(media["media_data"])
        if status != 200:
            raise RuntimeError(f"the result link answered {status}")
    else:
        data = base64.b64decode(media["media_data"][:64])
    if not data.startswith(b"\xff\xd8\xff"):
        raise RuntimeError("the answer is not a JPEG")


def latency(service: Service, body: bytes, count: int) -> dict[str, float]:
    """One client, one request at a time: p50/p95/p99 in ms of the POST (answer checked after)."""
    return percentiles(_timed_posts(service, body, count, None))


def floor_and_latency(service: Service, item: Input, body: bytes, result_rgb: np.ndarray,
                      count: int) -> tuple[dict[str, float], dict[str, float]]:
    """The floor and the service's latency for the same input, one floor run before each
    request: both see the machine in the same state, so their ratio does not drift with
    whatever else the machine is doing (the floor alone moved 12.6-16.6 ms between runs)."""
    text, quality = base64.b64encode(item.jpeg).decode(), Settings().jpeg_quality
    for _ in range(2):  # the first runs warm the models up
        floor_once(text, result_rgb, quality)
    floor: list[float] = []
    samples = _timed_posts(service, body, count, lambda: floor.append(floor_once(text, result_rgb, quality)))
    return percentiles(floor), percentiles(samples)


def _timed_posts(service: Service, body: bytes, count: int, before_each: Callable[[], None] | None) -> list[float]:
    with LoopbackClient(service.base_url, timeout=60) as client:
        for _ in range(3):
            post(client, service, body)
        samples = []
        for _ in range(count):
            if before_each is not None:
                before_each()
            ms, status = post(client, service, body)
            if status != 200:
                raise RuntimeError(f"request failed with {status}")
            samples.append(ms)
    return samples


def first_answers(service: Service, body: bytes, clients: int) -> list[float]:
    """The first requests a just-started service answers, `clients` at once (one per work
    process): ms each, slowest last. A warm-up that missed something shows here."""
    ready = threading.Barrier(clients)

    def first(_: int) -> float:
        with LoopbackClient(service.base_url, timeout=60) as client:
            ready.wait()
            ms, status = post(client, service, body)
        if status != 200:
            raise RuntimeError(f"request failed with {status}")
        return ms

    with ThreadPoolExecutor(clients) as pool:
        return sorted(pool.map(first, range(clients)))


HEALTH_EVERY_S = 1.0  # /healthz polled meanwhile, as an eager load balancer would (see throughput)
SATURATED_HEALTH_EVERY_S = 0.02  # where its answer time is the target


def throughput(service: Service, body: bytes, concurrency: int, count: int,
               health_every: float = HEALTH_EVERY_S) -> dict[str, float]:
    """`concurrency` clients send `count` requests in all: fused answers per second, latency
    of the fused and of the busy answers, and /healthz polled every `health_every` s
    meanwhile. A poll wakes both processes from sleep, which on this kind of machine costs
    the HTTP process ~1 ms of CPU and the client ~0.3 (0.25 and 0.05 ms back to back):
    at 10 polls a second that was ~0.4 ms per fused answer on the cores the answers need,
    at 50 ~1 ms. Its answer time is the target under saturation, polled every 20 ms there."""
    results: list[tuple[float, int]] = []
    health: list[float] = []
    done = threading.Event()

    def client_loop(n: int) -> None:
        with LoopbackClient(service.base_url, timeout=120) as client:
            for _ in range(n):
                results.append(post(client, service, body, parse=False))
                if results[-1][1] == 503:
                    time.sleep(BUSY_RETRY_AFTER_S)  # as Retry-After asks; the offered load stays above capacity

    def health_loop() -> None:
        with LoopbackClient(service.base_url, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get("/healthz")
                health.append((time.perf_counter() - started) * 1000)
                time.sleep(health_every)

    watcher = threading.Thread(target=health_loop, daemon=True)
    watcher.start()
    cpu_before = CpuUse.now(service)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, _split(count, concurrency)))
    elapsed = time.perf_counter() - started
    cpu = CpuUse.now(service).minus(cpu_before)
    done.set()
    watcher.join()
    ok = [ms for ms, status in results if status == 200]
    busy = [ms for ms, status in results if status == 503]
    return {"concurrency": concurrency, "requests": len(results), "ok": len(ok), "busy_503": len(busy),
            "other": len(results) - len(ok) - len(busy), "rps": len(ok) / elapsed,
            "ok_p50_ms": _pct(ok, 50), "ok_p99_ms": _pct(ok, 99), "busy_p99_ms": _pct(busy, 99),
            "healthz_p99_ms": _pct(health, 99), "healthz_max_ms": max(health, default=float("nan")),
            **cpu.per_request(max(len(ok), 1))}


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
    def now(cls, service: Service) -> "CpuUse":
        children = sum(_cpu_seconds(pid) for pid in child_pids(service.process.pid))
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()  # cpu user nice system idle ...
        ticks = os.sysconf("SC_CLK_TCK")
        steal = int(fields[8]) if len(fields) > 8 else 0
        return cls(_cpu_seconds(service.process.pid), children, time.process_time(),
                   int(fields[4]) / ticks, steal / ticks)

    def minus(self, before: "CpuUse") -> "CpuUse":
        return CpuUse(self.http_s - before.http_s, self.work_s - before.work_s,
                      self.client_s - before.client_s, self.idle_s - before.idle_s,
                      self.steal_s - before.steal_s)

    def per_request(self, requests: int) -> dict[str, float]:
        busy = self.http_s + self.work_s + self.client_s
        return {"cpu_ms_http": 1000 * self.http_s / requests, "cpu_ms_work": 1000 * self.work_s / requests,
                "cpu_ms_client": 1000 * self.client_s / requests,
                "idle_pct": 100 * self.idle_s / max(busy + self.idle_s, 1e-9), "steal_ms": 1000 * self.steal_s}


def median_round(runs: list[dict[str, float]], by: str = "rps") -> dict[str, float]:
    """The round of median `by` (the lower middle one of an even number), with every
    round's req/s, `by` and host steal, and the worst /healthz of them all. The host's
    speed moves by 10-15 % within minutes here: the best single run of each service told
    more about when it ran than about the service."""
    def value(run: dict[str, float]) -> float:
        return run[by] if np.isfinite(run[by]) else float("inf")

    median = dict(sorted(runs, key=value)[(len(runs) - 1) // 2])
    median["rounds_rps"] = [r["rps"] for r in runs]  # type: ignore[assignment]
    median[f"rounds_{by}"] = [r[by] for r in runs]  # type: ignore[assignment]
    median["rounds_steal_ms"] = [r.get("steal_ms", 0.0) for r in runs]  # type: ignore[assignment]
    median["healthz_p99_ms"] = max(r["healthz_p99_ms"] for r in runs)
    median["healthz_max_ms"] = max(r["healthz_max_ms"] for r in runs)
    return median


def saturation(service: Service, body: bytes, plan: Plan) -> dict[str, float]:
    """`plan.saturation_concurrency` clients against a 1-worker service, in rounds: the round
    of median busy-answer p99. A busy answer waits on nothing but the HTTP process, so one
    stall of it delays every one in flight at once: a full garbage collection there
    (125 ms, before freeze_startup_objects) took the first round's busy p99 to 105-150 ms
    in three runs, where the next rounds read 13-30 ms. One round should not decide."""
    runs = [throughput(service, body, plan.saturation_concurrency, 3 * plan.saturation_concurrency,
                       SATURATED_HEALTH_EVERY_S) for _ in range(plan.saturation_rounds)]
    return median_round(runs, by="busy_p99_ms")


def memory_run(service: Service, body: bytes, count: int) -> dict[str, float]:
    """Worker RSS after warm-up, then after `count` more requests from two clients."""
    before = service.worker_rss_mb()
    with ThreadPoolExecutor(2) as pool:
        def run(n: int) -> None:
            with LoopbackClient(service.base_url, timeout=60) as client:
                for _ in range(n):
                    post(client, service, body)
        list(pool.map(run, _split(count, 2)))
    after = service.worker_rss_mb()
    return {"requests": count, "rss_mb_after_warmup": max(before), "rss_mb_after": max(after),
            "growth_pct": 100 * (max(after) - max(before)) / max(before)}


# ------------------------------------------------------------------ the run

@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run of the issue, or a quick one for CI."""

    sizes: tuple[float, ...]
    runs: int  # latency samples per input
    throughput_requests: int  # per concurrency level and round
    throughput_rounds: int  # each level measured this many times, alternating the services
    concurrencies: tuple[int, ...]
    workers: tuple[int, ...]
    memory_requests: int
    saturation_concurrency: int  # beyond 1 + queue_size of one worker
    saturation_rounds: int
    compute_runs: int  # jobs per process in each round of the machine's own scaling (0: not measured)

    @classmethod
    def make(cls, quick: bool) -> "Plan":
        if quick:
            return cls(SIZES_MP[:2], 5, 12, 1, (1, 4), (1,), 20, 24, 1, 0)
        return cls(SIZES_MP, 40, 96, 8, (1, 4, 16), (1, 2), 1000, 64, 3, 25)


def run(faces_dir: Path, quick: bool, template_photo: Path | None = None) -> dict[str, object]:
    plan = Plan.make(quick)
    tune_for_compute()  # the floor runs under the same allocator and OpenCV settings as the service
    template_path = template_photo or faces_dir / TEMPLATE_PHOTO
    photo = Image.open(faces_dir / USER_PHOTO).convert("RGB")
    inputs = [make_input(photo, mp) for mp in plan.sizes]
    template_rgb = decode_image(template_path.read_bytes())
    report: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]},
        "template": {"photo": template_path.name, "width": template_rgb.shape[1], "height": template_rgb.shape[0],
                     "face_px": round(max(f.size for f in detect_faces(template_rgb)))},
        "inputs": [{"label": i.label, "width": i.width, "height": i.height, "bytes": len(i.jpeg),
                    "jpeg_quality": i.quality} for i in inputs]}
    freeze_startup_objects()  # the load generator's own full collections (~45 ms) are not the service's latency
    with tempfile.TemporaryDirectory(prefix="facefuse-bench-") as tmp:
        report.update(_measure_service(Path(tmp) / "data", template_path, template_rgb, inputs, plan))
    report["machine"]["load_after"] = os.getloadavg()[0]  # type: ignore[index]
    report["ratios"] = ratios(report)
    report["targets"] = targets(report)
    return report


def _measure_service(data_dir: Path, template_path: Path, template_rgb: np.ndarray, inputs: list[Input],
                     plan: Plan) -> dict[str, object]:
    """Every service measurement. One service per worker count, all started at once on the
    same data dir; their throughput runs alternate in eight rounds (1 worker at c=1, 2
    workers at c=1; 2 then 1; 2 then 1; 1 then 2; twice; then c=4, ...) so that a machine
    slowing down for a while (seen here: the same floor 17 -> 21 ms within a minute) does
    not make one of them look better. Latency, back-pressure and memory run on the 1-worker service."""
    out: dict[str, object] = {}
    services: dict[int, Service] = {}
    try:
        services[1] = first = start_service(data_dir, 1, None)
        out["start_s_1_worker"] = first.cold_start_s
        key = (first.auth["api_key"], first.auth["api_secret"])
        template_id = register_template(data_dir, template_path)
        one_mp = next(i for i in inputs if i.nominal == 1.0)
        body = fuse_body(one_mp, template_id, "base64")
        out.update(_latencies(first, inputs, template_id, template_rgb, plan))
        for workers in plan.workers[1:]:
            services[workers] = start_service(data_dir, workers, key)
            out[f"start_s_{workers}_worker"] = services[workers].cold_start_s
            out[f"first_answers_ms_{workers}_worker"] = first_answers(services[workers], body, workers)
        probe = ComputeProbe(one_mp, template_path.read_bytes(), plan.compute_runs) if plan.compute_runs else None
        try:
            out.update(_load(services, body, plan, probe))
        finally:
            if probe is not None:
                probe.close()
        out["saturation_1_worker"] = saturation(first, body, plan)
        out["memory_1_worker"] = memory_run(first, body, plan.memory_requests)
        out["rss_mb_http_process"] = [first.http_rss_mb()]
    finally:
        for service in services.values():
            service.stop()
    return out


def _load(services: dict[int, Service], body: bytes, plan: Plan, probe: ComputeProbe | None) -> dict[str, object]:
    for service in services.values():
        latency(service, body, 4)  # every worker warm
    out: dict[str, object] = {f"throughput_{n}_worker": [] for n in services}
    for concurrency in plan.concurrencies:
        if probe is not None:
            probe.round()  # the machine's own scaling, next to each pair of loaded runs
        rounds: dict[int, list[dict[str, float]]] = {n: [] for n in services}
        for round_index in range(plan.throughput_rounds):
            order = list(services.items())
            for workers, service in order if round_index % 4 in (0, 3) else reversed(order):  # ABBA: a trend cancels
                rounds[workers].append(throughput(service, body, concurrency, plan.throughput_requests))
        for workers, runs in rounds.items():
            out[f"throughput_{workers}_worker"].append(median_round(runs))  # type: ignore[union-attr]
    out.update({f"rss_mb_{n}_worker": service.worker_rss_mb() for n, service in services.items()})
    if probe is not None:
        out["compute_scaling"] = probe.result()
    return out


def _latencies(service: Service, inputs: list[Input], template_id: str, template_rgb: np.ndarray,
               plan: Plan) -> dict[str, object]:
    floor, base64_out = {}, {}
    for item in inputs:
        floor[item.label], base64_out[item.label] = floor_and_latency(
            service, item, fuse_body(item, template_id, "base64"), template_rgb, plan.runs)
    return {"floor_ms": floor, "service_ms": base64_out,
            "service_url_out_ms": {i.label: latency(service, fuse_body(i, template_id, "url"), plan.runs)
                                   for i in inputs}}


P50_TARGETS = {"0.25 MP": 2.0, "1 MP": 2.0, "4 MP": 3.0, "16 MP": 4.0}


def ratios(report: dict[str, object]) -> dict[str, float]:
    floor, service = report["floor_ms"], report["service_ms"]  # type: ignore[assignment]
    out = {f"p50_over_floor_{label}": service[label]["p50"] / floor[label]["p50"] for label in service}  # type: ignore[index]
    if "throughput_2_worker" in report:
        one, two = _best_loaded(report["throughput_1_worker"]), _best_loaded(report["throughput_2_worker"])  # type: ignore[arg-type]
        out["two_workers_over_one"] = two["rps"] / one["rps"]
        # The most two work processes could give on this machine if no core ever idled and
        # a process ran as fast beside another as alone: the cores over the CPU a request
        # takes everywhere (HTTP process and load generator included), over one worker.
        per_request = one["cpu_ms_work"] + two["cpu_ms_http"] + two["cpu_ms_client"]
        out["two_workers_over_one_ceiling"] = (report["machine"]["cpus"] * 1000 / per_request) / one["rps"]  # type: ignore[index]
        paired = paired_ratios(report["throughput_1_worker"], report["throughput_2_worker"])  # type: ignore[arg-type]
        if paired:
            out["two_workers_over_one_paired"] = float(np.median(paired))
    if "compute_scaling" in report:
        out["cores_compute_speedup"] = report["compute_scaling"]["speedup"]  # type: ignore[index]
        if "two_workers_over_one" in out:  # how much of what the machine gives the service keeps
            out["two_workers_over_one_of_machine"] = out["two_workers_over_one"] / out["cores_compute_speedup"]
    return out


def paired_ratios(one: list[dict[str, object]], two: list[dict[str, object]]) -> list[float]:
    """2 workers over 1 in each round where both had more clients than workers, the two
    runs back to back: seconds apart, so the host's drift over the minutes of the whole
    run (which the best cells of each can catch at different speeds) mostly cancels."""
    return [b / a for cell_one, cell_two in zip(one, two) if int(cell_one["concurrency"]) > 2  # type: ignore[call-overload]
            for a, b in zip(cell_one.get("rounds_rps", []), cell_two.get("rounds_rps", []))]  # type: ignore[call-overload]


def targets(report: dict[str, object]) -> dict[str, bool]:
    """Each target of the issue that this run measured: met or not."""
    ratio = report["ratios"]
    met = {f"p50 {label} <= {limit:g}x floor": ratio[f"p50_over_floor_{label}"] <= limit  # type: ignore[index]
           for label, limit in P50_TARGETS.items() if f"p50_over_floor_{label}" in ratio}  # type: ignore[operator]
    if "two_workers_over_one" in ratio:  # type: ignore[operator]
        scaling = ratio.get("two_workers_over_one_paired", ratio["two_workers_over_one"])  # type: ignore[union-attr]
        met["2 workers >= 1.8x 1 worker (paired rounds)"] = scaling >= 1.8
    loaded = [r for k, runs in report.items() if k.startswith("throughput_") for r in runs]  # type: ignore[union-attr]
    loaded.append(report["saturation_1_worker"])
    met["/healthz <= 50 ms under load (p99)"] = all(r["healthz_p99_ms"] <= 50 for r in loaded)
    saturation = report["saturation_1_worker"]
    met["full queue: busy answers at once (p99 <= 50 ms)"] = (  # type: ignore[index]
        saturation["busy_503"] > 0 and saturation["busy_p99_ms"] <= 50)  # type: ignore[index]
    memory = report["memory_1_worker"]
    met["memory <= 500 MB per worker"] = max(memory["rss_mb_after"], *_all_rss(report)) <= 500  # type: ignore[index]
    met["memory flat over the run (<= +10 %)"] = memory["growth_pct"] <= 10  # type: ignore[index]
    return met


def _all_rss(report: dict[str, object]) -> list[float]:
    return [mb for key, value in report.items() if key.startswith("rss_mb_") for mb in value]  # type: ignore[union-attr]


def _best_loaded(runs: list[dict[str, float]]) -> dict[str, float]:
    """The fastest cell with more clients than workers, as the paired rounds (one client
    at a time gives a second worker nothing to do, and lets one worker's lone requests take
    the idle core: facefuse.parallel)."""
    loaded = [r for r in runs if int(r["concurrency"]) > 2]
    return max(loaded or runs, key=lambda r: r["rps"])


def to_json(report: dict[str, object]) -> str:
    """The report as strict JSON: a value that could not be measured (NaN) becomes null."""
    def clean(value: object) -> object:
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(report), indent=1, allow_nan=False)


def print_table(report: dict[str, object]) -> None:
    for line in table_lines(report):
        print(line)


def table_lines(report: dict[str, object]) -> list[str]:
    t = report["template"]
    lines = [f"template {t['photo']} {t['width']}x{t['height']}, face {t['face_px']} px; "  # type: ignore[index]
             f"{report['machine']['cpus']} cpus, load {report['machine']['load_before']:.2f} before",  # type: ignore[index]
             f"{'input':>8} {'size':>11} {'floor p50':>10} {'svc p50':>8} {'p95':>7} {'p99':>7} "
             f"{'ratio':>6} {'target':>6}  {'url p50':>8} {'url p99':>8}"]
    for item in report["inputs"]:  # type: ignore[attr-defined]
        label = item["label"]
        floor, svc = report["floor_ms"][label], report["service_ms"][label]  # type: ignore[index]
        url = report["service_url_out_ms"][label]  # type: ignore[index]
        lines.append(f"{label:>8} {item['width']:>5}x{item['height']:<5} {floor['p50']:>8.1f}ms {svc['p50']:>6.1f}ms "
                     f"{svc['p95']:>5.1f}ms {svc['p99']:>5.1f}ms {svc['p50'] / floor['p50']:>5.2f}x "
                     f"{P50_TARGETS[label]:>5g}x  {url['p50']:>6.1f}ms {url['p99']:>6.1f}ms")
    keys = [k for k in report if k.startswith("throughput_")] + ["saturation_1_worker"]
    for key in keys:
        runs = report.get(key, [])
        for r in runs if isinstance(runs, list) else [runs]:
            rounds = r.get("rounds_rps", [])
            each = f" (rounds {'/'.join(f'{rps:.1f}' for rps in rounds)})" if len(rounds) > 1 else ""
            busy_rounds = r.get("rounds_busy_p99_ms", [])
            busy_each = f", rounds {'/'.join(f'{ms:.0f}' for ms in busy_rounds)}" if len(busy_rounds) > 1 else ""
            steal = sum(r.get("rounds_steal_ms", [r.get("steal_ms", 0.0)]))
            lines.append(f"{key}: c={r['concurrency']:<2} {r['rps']:6.1f} req/s{each}  ok {r['ok']}/{r['requests']} "
                         f"(p50 {r['ok_p50_ms']:.0f} ms, p99 {r['ok_p99_ms']:.0f} ms)  busy {r['busy_503']} "
                         f"(p99 {r['busy_p99_ms']:.1f} ms{busy_each})  healthz p99 {r['healthz_p99_ms']:.1f} ms "
                         f"max {r['healthz_max_ms']:.1f} ms  cpu/ok: http {r['cpu_ms_http']:.1f} "
                         f"work {r['cpu_ms_work']:.1f} client {r['cpu_ms_client']:.1f} ms, idle {r['idle_pct']:.0f} %, "
                         f"host steal {steal:.0f} ms")
    memory = report["memory_1_worker"]
    lines.append(f"memory (1 worker): {memory['rss_mb_after_warmup']:.0f} MB after warm-up, "  # type: ignore[index]
                 f"{memory['rss_mb_after']:.0f} MB after {memory['requests']} more requests "  # type: ignore[index]
                 f"({memory['growth_pct']:+.1f} %)")  # type: ignore[index]
    for key in (k for k in report if k.startswith("rss_mb_")):
        mbs = ", ".join(f"{v:.0f} MB" for v in report[key])  # type: ignore[union-attr]
        what = "HTTP process (no models)" if key == "rss_mb_http_process" else f"per work process ({key[7:].replace('_', ' ')})"
        lines.append(f"memory {what}, after its load: {mbs}")
    starts = [f"{k[8:].replace('_', ' ')} {v:.2f} s" for k, v in report.items() if k.startswith("start_s_")]
    lines.append("cold start to /readyz: " + ", ".join(starts) + " (the first on a fresh data dir)")
    for key in (k for k in report if k.startswith("first_answers_ms_")):
        answers = ", ".join(f"{ms:.0f}" for ms in report[key])  # type: ignore[union-attr]
        lines.append(f"first answers after start ({key[17:].replace('_', ' ')}s, one client each): {answers} ms")
    scaling = report.get("compute_scaling")
    if isinstance(scaling, dict):
        together = "/".join(f"{ms:.1f}" for ms in scaling["together_ms_p50"])
        lines.append(f"machine, no HTTP: a 1 MP job {scaling['alone_ms_p50']:.1f} ms alone, {together} ms with "
                     f"one per core at once: {scaling['cores']} cores give {scaling['speedup']:.2f}x one")
    lines.append("ratios: " + "  ".join(f"{k} {v:.2f}" for k, v in report["ratios"].items()))  # type: ignore[union-attr]
    lines.extend(f"target {'MET ' if ok else 'MISS'}  {name}" for name, ok in report["targets"].items())  # type: ignore[union-attr]
    return lines


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads (finished ones too), to the nanosecond:
    its CPU-time clock. /proc's utime + stime count 10 ms ticks, which a short run (the
    quick bench's dozen requests, ~0.5 ms of HTTP work each) rounds down to nothing. 0
    once the process is gone."""
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
