"""Abuse against the real server: per-key qps and daily quota, shared across workers."""

from __future__ import annotations

import json
import time

import httpx

from conftest import RunningServer
from test_api import assert_error


def new_key(server: RunningServer, *args: str) -> dict[str, str]:
    created = json.loads(server.cli("keys", "create", "--name", "limited", "--json", *args).stdout)
    return {"api_key": created["api_key"], "api_secret": created["api_secret"]}


def test_qps_limit_refuses_a_burst_then_recovers(server: RunningServer) -> None:
    auth = new_key(server, "--qps", "2")
    with server.client() as client:
        answers = [client.post("/v3/facefuse", params=auth, json={}) for _ in range(6)]
        codes = [r.json()["ErrorCode"] for r in answers]
        assert codes[:2] == [10002, 10002]  # spent on a (bad) request: auth passed
        refused = [r for r in answers if r.status_code == 429]
        assert len(refused) >= 3
        assert_error(refused[0], 429, 10201, "QPS_LIMIT_EXCEEDED")
        assert int(refused[0].headers["retry-after"]) >= 1
        time.sleep(1.1)
        assert client.post("/v3/facefuse", params=auth, json={}).json()["ErrorCode"] == 10002


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
        for _ in range(16):  # a fresh connection each time: both workers get requests
            with httpx.Client(base_url=running.base_url, trust_env=False, timeout=30) as client:
                statuses.append(client.post("/v3/facefuse", params=auth, json={}).status_code)
        assert statuses.count(400) == 10 and statuses.count(429) == 6
    finally:
        stop_server(running)
