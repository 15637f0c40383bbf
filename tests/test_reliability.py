"""Hostile input, abuse, overload and shutdown against the real server.

Per-key qps and daily quota (shared across workers), header-checked decompression
bombs, body/JSON/base64 limits, result-link walking, secrets kept out of metrics and
logs, a full queue answering busy at once, the request deadline, and SIGTERM finishing
the requests in flight.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import DEMO_TEMPLATE, Backend, RunningServer, face, start_server, stop_server
from test_api import assert_error

from facefuse.errors import Err


def new_key(server: RunningServer, *args: str) -> dict[str, str]:
    created = json.loads(server.cli("keys", "create", "--name", "limited", "--json", *args).stdout)
    return {"api_key": created["api_key"], "api_secret": created["api_secret"]}


def test_qps_limit_refuses_a_burst(server: RunningServer) -> None:
    auth = new_key(server, "--qps", "2")
    with server.client() as client:
        answers = [client.post("/v3/facefuse", params=auth, json={}) for _ in range(6)]
        codes = [r.json()["ErrorCode"] for r in answers]
        assert codes[:2] == [10002, 10002]  # spent on a (bad) request: auth passed
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) >= 3
        assert_error(refused[0], 429, 10201, "QPS_LIMIT_EXCEEDED")
        assert int(refused[0].headers["retry-after"]) >= 1


class Clock:
    """A clock the test moves by hand (UsageLimiter reads it instead of time.time)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limited_key(name: str, qps: float | None = None, quota: int | None = None):
    from facefuse.keys.store import ApiKey

    return ApiKey(
        api_key=name,
        name=name,
        admin=False,
        qps=qps,
        daily_quota=quota,
        created_at="2027-01-15T08:00:00Z",
        revoked_at=None,
    )


def test_a_refused_key_is_admitted_again_once_its_retry_after_has_passed(backend: Backend) -> None:
    from facefuse.keys.limits import RateLimitExceeded, UsageLimiter

    clock = Clock(1_800_000_000.0)
    limiter, key = UsageLimiter(backend.open_db(), clock=clock), limited_key("q", qps=2)
    limiter.spend(key)
    limiter.spend(key)  # a second's worth at once
    refused_at = clock.now
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.spend(key)
    assert refused.value.error is Err.QPS_LIMIT_EXCEEDED and refused.value.retry_after == 1
    clock.now = refused_at + 0.4  # not yet a token back
    with pytest.raises(RateLimitExceeded):
        limiter.spend(key)
    clock.now = refused_at + refused.value.retry_after  # what Retry-After told the client
    limiter.spend(key)


def test_a_spent_daily_quota_renews_at_midnight_utc(backend: Backend) -> None:
    from datetime import datetime, timezone

    from facefuse.keys.limits import RateLimitExceeded, UsageLimiter

    clock = Clock(datetime(2027, 1, 15, 23, 59, 30, tzinfo=timezone.utc).timestamp())
    limiter, key = UsageLimiter(backend.open_db(), clock=clock), limited_key("d", quota=1)
    limiter.spend(key)
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.spend(key)
    assert refused.value.error is Err.QUOTA_EXCEEDED and refused.value.retry_after == 30
    clock.now += 29
    with pytest.raises(RateLimitExceeded):
        limiter.spend(key)
    clock.now += 1  # 00:00:00 UTC
    limiter.spend(key)


def test_a_quota_is_exact_when_many_threads_of_two_nodes_spend_it_at_once(backend: Backend) -> None:
    import threading

    from facefuse.keys.limits import RateLimitExceeded, UsageLimiter

    key = limited_key("many", quota=30)
    nodes = [UsageLimiter(backend.open_db()), UsageLimiter(backend.open_db())]
    admitted: list[bool] = []

    def spend(limiter: UsageLimiter) -> None:
        for _ in range(10):
            try:
                limiter.spend(key)
                admitted.append(True)
            except RateLimitExceeded:
                admitted.append(False)

    threads = [threading.Thread(target=spend, args=(nodes[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 30 and admitted.count(False) == 50


def test_daily_quota_is_enforced(server: RunningServer) -> None:
    auth = new_key(server, "--daily-quota", "3")
    with server.client() as client:
        codes = [client.post("/v3/facefuse", params=auth, json={}).json()["ErrorCode"] for _ in range(3)]
        assert codes == [10002] * 3
        over = client.post("/v3/facefuse", params=auth, json={})
        assert_error(over, 429, 10202, "QUOTA_EXCEEDED")
        assert 0 < int(over.headers["retry-after"]) <= 86400


def test_unlimited_keys_are_not_throttled(server: RunningServer) -> None:
    with server.client() as client:
        codes = {client.post("/v3/facefuse", params=server.auth, json={}).status_code for _ in range(20)}
    assert codes == {400}


def test_limits_are_shared_by_two_worker_processes(tmp_path_factory) -> None:
    from conftest import start_server, stop_server

    running = start_server(tmp_path_factory.mktemp("two") / "data", args=("--workers", "2"))
    try:
        auth = new_key(running, "--daily-quota", "10")
        statuses = []
        for _ in range(16):  # a fresh connection each time; the limits are kept in SQLite, not per process
            with httpx.Client(base_url=running.base_url, trust_env=False, timeout=30) as client:
                statuses.append(client.post("/v3/facefuse", params=auth, json={}).status_code)
        assert statuses.count(400) == 10 and statuses.count(429) == 6
    finally:
        stop_server(running)


# ------------------------------------------------------------------ hostile input, black-box


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims width x height pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def fuse_with(media_data: str) -> dict:
    return {
        "parameter": {"faceFusePPType": DEMO_TEMPLATE},
        "media_info_list": [{"media_data": media_data, "media_profiles": {"media_data_type": "jpg"}}],
    }


def test_decompression_bomb_is_refused_from_its_header(server: RunningServer) -> None:
    # That nothing is decoded is decided in test_media_decode (the decoders are never called).
    bomb = base64.b64encode(png_claiming(30000, 30000)).decode()
    with server.client() as client:
        answer = client.post("/v3/facefuse", params=server.auth, json=fuse_with(bomb))
    assert_error(answer, 400, 10007, "IMAGE_SIZE_OUT_OF_RANGE")
    assert "30000x30000" in answer.json()["Data"]


def test_chunked_body_over_the_limit_is_cut_off_while_reading(server: RunningServer) -> None:
    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b'{"media_info_list": "'
        for _ in range(9 * 16):
            yield b"A" * 65536

    with server.client() as client:
        answer = client.post("/v3/facefuse", params=server.auth, content=chunks())
    assert_error(answer, 413, 10106, "REQUEST_TOO_LARGE")


def test_json_shape_and_media_count_limits(server: RunningServer) -> None:
    item = {"media_data": "QUJD", "media_profiles": {}}
    nine = {"parameter": {"faceFusePPType": DEMO_TEMPLATE}, "media_info_list": [item] * 9}
    long_list = {"parameter": {}, "media_info_list": [item], "extra": {"x": list(range(65))}}
    deep: object = 1
    for _ in range(17):
        deep = {"d": deep}
    with server.client() as client:

        def post(body: object) -> httpx.Response:
            return client.post("/v3/facefuse", params=server.auth, json=body)

        assert "at most 8" in assert_error(post(nine), 400, 10003, "INVALID_PARAMETER")["Data"]
        assert "at most 64" in assert_error(post(long_list), 400, 10003, "INVALID_PARAMETER")["Data"]
        assert_error(post({"parameter": {}, "extra": deep}), 400, 10001, "INVALID_JSON")


def test_base64_longer_than_the_image_limit_is_refused_before_decoding(server: RunningServer) -> None:
    too_long = "A" * (3 * 1024 * 1024)  # 2.25 MB of bytes once decoded; the body itself is under 8 MB
    with server.client() as client:
        answer = client.post("/v3/facefuse", params=server.auth, json=fuse_with(too_long))
    assert_error(answer, 400, 10006, "IMAGE_FILE_TOO_LARGE")


@pytest.mark.parametrize(
    "name",
    [
        "..%2Ffacefuse.sqlite3",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "....jpg",
        "A" * 32,
        "A" * 32 + ".jpg",
        "%00.jpg",
        "..",
        "x.jpg%00",
    ],
)
def test_result_links_cannot_be_guessed_or_walked_out_of(server: RunningServer, name: str) -> None:
    with server.client() as client:
        assert_error(client.get(f"/v3/results/{name}"), 404, 10104, "NOT_FOUND")


def test_secrets_are_never_in_metrics_or_logs(server: RunningServer) -> None:
    auth = new_key(server)
    with server.client() as client:
        client.post("/v3/facefuse", params=auth, json={})
        client.post("/v3/facefuse", params={**auth, "api_secret": auth["api_secret"] + "x"}, json={})
        metrics = client.get("/metrics").text
    log = (server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log").read_text()
    for text in (metrics, log):
        assert auth["api_secret"] not in text and "api_secret=" not in text


# ------------------------------------------------------------------ overload and shutdown

SELFIE = "face_recognition__examples_obama.jpg"


def selfie_body() -> dict:
    return fuse_with(base64.b64encode(face(SELFIE).read_bytes()).decode())


def post_at_once(server: RunningServer, count: int) -> list[tuple[int, float, httpx.Response]]:
    """`count` fuse requests released together; (status, seconds, answer) for each."""
    barrier = threading.Barrier(count)
    body = json.dumps(selfie_body())

    def one(_: int) -> tuple[int, float, httpx.Response]:
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=60) as client:
            client.get("/healthz")
            barrier.wait()
            started = time.perf_counter()
            answer = client.post("/v3/facefuse", params=server.auth, content=body)
            return answer.status_code, time.perf_counter() - started, answer

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture(scope="module")
def tiny_queue_server(tmp_path_factory: pytest.TempPathFactory):
    running = start_server(
        tmp_path_factory.mktemp("tiny") / "data", extra_env={"FACEFUSE_WORKERS": "1", "FACEFUSE_QUEUE_SIZE": "1"}
    )
    yield running
    stop_server(running)


def test_a_full_queue_answers_busy_at_once(tiny_queue_server: RunningServer) -> None:
    answers = post_at_once(tiny_queue_server, 8)
    busy = [(s, t, a) for s, t, a in answers if s == 503]
    ok = [s for s, _, _ in answers if s == 200]
    assert {s for s, _, _ in answers} <= {200, 503}
    assert len(ok) >= 2 and busy, [s for s, _, _ in answers]
    for _, seconds, answer in busy:
        assert_error(answer, 503, 10301, "SERVER_BUSY")
        assert answer.headers["retry-after"] == "1"
        assert seconds < max(t for s, t, _ in answers if s == 200)  # refused before the work ends


def test_a_request_past_its_deadline_answers_process_timeout(tmp_path_factory: pytest.TempPathFactory) -> None:
    running = start_server(
        tmp_path_factory.mktemp("deadline") / "data", extra_env={"FACEFUSE_REQUEST_DEADLINE": "0.005"}
    )
    try:
        with running.client() as client:
            answer = client.post("/v3/facefuse", params=running.auth, json=selfie_body())
            assert_error(answer, 504, 10302, "PROCESS_TIMEOUT")
            assert client.get("/readyz").status_code == 200
    finally:
        stop_server(running)


def test_sigterm_finishes_the_requests_in_flight(tmp_path_factory: pytest.TempPathFactory) -> None:
    running = start_server(tmp_path_factory.mktemp("graceful") / "data")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post_at_once, running, 6)
        with running.client(timeout=5) as client:
            deadline, in_flight = time.monotonic() + 30, 0
            while in_flight < 3 and time.monotonic() < deadline:
                in_flight = client.get("/readyz").json().get("queue", 0)
        running.process.send_signal(signal.SIGTERM)
        answers = pending.result(timeout=120)
    assert in_flight >= 3, "the requests were not in flight when SIGTERM came"
    assert [s for s, _, _ in answers] == [200] * 6
    assert running.process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM when done
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.base_url}/healthz", trust_env=False, timeout=2)


# ------------------------------------------------------------------ the last line of defence


def test_a_client_hanging_up_mid_body_is_logged_without_a_stack_trace(tmp_path_factory) -> None:
    import socket

    running = start_server(tmp_path_factory.mktemp("hangup") / "data")
    try:
        port = int(running.base_url.rsplit(":", 1)[1])
        target = f"/v3/facefuse?api_key={running.api_key}&api_secret={running.api_secret}"
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(f'POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{"a":'.encode())
                time.sleep(0.1)
        with running.client() as client:
            assert client.get("/readyz").status_code == 200
            assert 'status="499"' in client.get("/metrics").text
    finally:
        stop_server(running)
    log = (running.data_dir.parent / f"server-{port}.log").read_text()
    assert "Traceback" not in log and "unexpected failure" not in log
    assert log.count('"status": 499') == 3


def test_an_unexpected_exception_answers_process_error_with_the_request_id() -> None:
    import asyncio

    from facefuse.wire.middleware import RequestContextMiddleware

    async def broken(scope, receive, send) -> None:
        raise RuntimeError("/secret/internal/path exploded")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=RequestContextMiddleware(broken, max_body_bytes=1024))
        async with httpx.AsyncClient(transport=transport, base_url="http://facefuse.test") as client:
            return await client.get("/anything", headers={"X-Request-Id": "req-42"})

    answer = asyncio.run(call())
    body = assert_error(answer, 400, 20001, "PROCESS_ERROR")
    assert answer.headers["x-request-id"] == "req-42" and "req-42" in body["Data"]
    assert "secret" not in body["Data"]


def test_a_body_trickling_in_is_cut_off_at_the_request_deadline(tmp_path_factory) -> None:
    import socket

    running = start_server(tmp_path_factory.mktemp("trickle") / "data", extra_env={"FACEFUSE_REQUEST_DEADLINE": "1"})
    try:
        port = int(running.base_url.rsplit(":", 1)[1])
        target = f"/v3/facefuse?api_key={running.api_key}&api_secret={running.api_secret}"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
            started = time.monotonic()
            sock.settimeout(0.2)
            answer, closed = b"", False
            while not closed and time.monotonic() - started < 8:  # the bound only stops a hang
                try:
                    sock.sendall(b" ")  # one byte every 0.2 s
                    chunk = sock.recv(65536)
                    answer, closed = answer + chunk, not chunk
                except TimeoutError:
                    pass
                except OSError:  # reset: the server closed the connection
                    closed = True
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        # A byte every 0.2 s keeps the connection busy: only the request deadline ends it.
        assert b'"ErrorCode":10302' in answer and b"did not arrive within 1 s" in answer
        assert closed, "the connection of a cut-off body must be closed"
        with running.client() as client:
            fused = client.post("/v3/facefuse", params=running.auth, json={})  # a normal body is unaffected
            assert fused.json()["ErrorCode"] == 10002
    finally:
        stop_server(running)


# ------------------------------------------------------------------ work processes


def work_processes(server: RunningServer) -> list[int]:
    """PIDs of the server's work processes (children of any of its threads)."""
    from pathlib import Path

    children = [
        int(pid)
        for task in Path(f"/proc/{server.process.pid}/task").glob("*")
        for pid in (task / "children").read_text().split()
    ]
    return [p for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_fusion_runs_in_one_work_process_per_worker(tmp_path_factory) -> None:
    running = start_server(tmp_path_factory.mktemp("procs") / "data", extra_env={"FACEFUSE_WORKERS": "2"})
    try:
        assert len(work_processes(running)) == 2  # started, models loaded, before /readyz
    finally:
        stop_server(running)


def test_a_crashed_work_process_costs_only_its_own_request(tmp_path_factory) -> None:
    running = start_server(tmp_path_factory.mktemp("crash") / "data", extra_env={"FACEFUSE_WORKERS": "1"})
    try:
        with running.client() as client:
            [idle] = work_processes(running)
            os_kill(idle)  # dies while idle: the next request goes to a new process
            assert client.post("/v3/facefuse", params=running.auth, json=selfie_body()).status_code == 200
            [busy] = work_processes(running)
            assert busy != idle
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(client.post, "/v3/facefuse", params=running.auth, json=selfie_body())
                deadline = time.monotonic() + 30
                while client.get("/readyz").json().get("queue", 0) < 1 and time.monotonic() < deadline:
                    time.sleep(0.002)
                os_kill(busy)  # dies with the request in hand: a fusion is tried again
                assert pending.result(timeout=60).status_code == 200
            assert client.post("/v3/facefuse", params=running.auth, json=selfie_body()).status_code == 200
            assert client.get("/readyz").status_code == 200
        log = running.data_dir.parent / f"server-{running.base_url.rsplit(':', 1)[1]}.log"
        assert "Traceback" not in log.read_text()
    finally:
        stop_server(running)


def test_work_processes_leave_with_a_killed_server(tmp_path_factory) -> None:
    running = start_server(tmp_path_factory.mktemp("orphans") / "data", extra_env={"FACEFUSE_WORKERS": "2"})
    workers = work_processes(running)
    running.process.kill()
    running.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)], "work processes outlived their server"
    stop_server(running)


def os_kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)
