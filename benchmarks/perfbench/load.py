"""Requests against the running service: latency one at a time, loaded runs of concurrent
clients (throughput, busy answers, /healthz meanwhile, where the CPU went), the first
answers after a start, and memory over many requests."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson

from facefuse.settings import Settings
from perfbench.client import LoopbackClient
from perfbench.inputs import Input, floor_once
from perfbench.report import LoadCell, LoadRun, MemoryRun, Percentiles, median_round
from perfbench.service import CpuUse, Service

BUSY_RETRY_AFTER_S = 1.0  # what the service's Retry-After header says on a busy answer
HEALTH_EVERY_S = 1.0  # /healthz polled meanwhile, as an eager load balancer would (see throughput)
SATURATED_HEALTH_EVERY_S = 0.02  # where its answer time is the target


def fuse_body(item: Input, template_id: str, rsp: str) -> bytes:
    return json.dumps(
        {
            "parameter": {"rsp_media_type": rsp, "faceFusePPType": template_id},
            "extra": {},
            "media_info_list": [
                {"media_data": base64.b64encode(item.jpeg).decode(), "media_profiles": {"media_data_type": "jpg"}}
            ],
        }
    ).encode()


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
    """The answer's shape and its JPEG's first bytes, without parsing its half a megabyte:
    an answer that is not this is parsed whole and checked."""
    head = _BASE64_ANSWER_HEAD.match(data[:256])
    return (
        head is not None
        and data.endswith(_BASE64_ANSWER_TAIL)
        and base64.b64decode(head.group(1)).startswith(b"\xff\xd8\xff")
    )


def _check_answer(client: LoopbackClient, answer: Any) -> None:
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


def latency(service: Service, body: bytes, count: int) -> Percentiles:
    """One client, one request at a time: p50/p95/p99 in ms of the POST (answer checked after)."""
    return Percentiles.of(_timed_posts(service, body, count, None))


def floor_and_latency(
    service: Service, item: Input, body: bytes, result_rgb: np.ndarray, count: int
) -> tuple[Percentiles, Percentiles]:
    """The floor and the service's latency for the same input, one floor run before each
    request: both see the machine in the same state, so their ratio does not drift with
    whatever else the machine is doing."""
    text, quality = base64.b64encode(item.jpeg).decode(), Settings().jpeg_quality
    for _ in range(2):  # the first runs warm the models up
        floor_once(text, result_rgb, quality)
    floor: list[float] = []
    samples = _timed_posts(service, body, count, lambda: floor.append(floor_once(text, result_rgb, quality)))
    return Percentiles.of(floor), Percentiles.of(samples)


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


def throughput(
    service: Service, body: bytes, concurrency: int, count: int, health_every: float = HEALTH_EVERY_S
) -> LoadRun:
    """`concurrency` clients send `count` requests in all: fused answers per second, latency
    of the fused and of the busy answers, and /healthz polled every `health_every` s
    meanwhile. A poll wakes both processes from sleep, which costs CPU on the cores the
    answers need, so it is polled once a second here; under saturation its answer time is
    the target, and it is polled every 20 ms there."""
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
    answered = max(len(ok), 1)
    return LoadRun(
        concurrency=concurrency,
        requests=len(results),
        ok=len(ok),
        busy_503=len(busy),
        other=len(results) - len(ok) - len(busy),
        rps=len(ok) / elapsed,
        ok_p50_ms=_pct(ok, 50),
        ok_p99_ms=_pct(ok, 99),
        busy_p99_ms=_pct(busy, 99),
        healthz_p99_ms=_pct(health, 99),
        healthz_max_ms=max(health, default=float("nan")),
        cpu_ms_http=1000 * cpu.http_s / answered,
        cpu_ms_work=1000 * cpu.work_s / answered,
        cpu_ms_client=1000 * cpu.client_s / answered,
        idle_pct=cpu.idle_pct(),
        steal_ms=1000 * cpu.steal_s,
    )


def saturation(service: Service, body: bytes, concurrency: int, rounds: int) -> LoadCell:
    """`concurrency` clients against a 1-worker service, in rounds: the round of median
    busy-answer p99. A busy answer waits on nothing but the HTTP process, so one stall of
    it (a full garbage collection, the host taking the CPU) delays every one in flight at
    once: one round should not decide."""
    runs = [throughput(service, body, concurrency, 3 * concurrency, SATURATED_HEALTH_EVERY_S) for _ in range(rounds)]
    return median_round(runs, by="busy_p99_ms")


def memory_run(service: Service, body: bytes, count: int) -> MemoryRun:
    """Worker RSS after warm-up, then after `count` more requests from two clients."""
    before = service.worker_rss_mb()

    def run(n: int) -> None:
        with LoopbackClient(service.base_url, timeout=60) as client:
            for _ in range(n):
                post(client, service, body)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, _split(count, 2)))
    after = service.worker_rss_mb()
    return MemoryRun(count, max(before), max(after), 100 * (max(after) - max(before)) / max(before))


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
