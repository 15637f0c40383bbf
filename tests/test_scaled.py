"""Scaled mode end to end: two `facefuse serve` nodes sharing one PostgreSQL server and one
S3 endpoint (moto's server), behind nginx with deploy/nginx-facefuse.conf; then the faults:
a node killed with SIGKILL under load, PostgreSQL restarted under load, object storage down.

Every outcome is decided by events (answers counted, processes stopped), not by time. The
tests run in file order: the faults come last, object storage's outage (which loses moto's
in-memory state) the very last.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import components
import httpx
import pytest
from conftest import DEMO_TEMPLATE, FACEFUSE, RunningServer, face, start_server, stop_server
from test_api import assert_error, b64, fuse_body

from facefuse.storage.postgres import PostgresDatabase

SELFIE = "face_recognition__examples_obama.jpg"
TEMPLATE_PHOTO = "deepface__img5.jpg"
LOAD_CLIENTS = 4
REQUEST_TIMEOUT = 120.0  # a guard against a hang, never reached by a passing run

pytestmark = pytest.mark.skipif(
    components.postgres_bin() is None or components.nginx_bin() is None,
    reason="needs PostgreSQL's server and nginx from Debian's packages (.ci/run installs them)",
)


@dataclass
class Cluster:
    postgres: components.PostgresServer
    s3: components.MotoServer
    nodes: list[RunningServer]
    nginx: components.NginxServer
    env: dict[str, str]
    cli_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return self.nodes[0].auth

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`facefuse ARGS` as a third process on the same database and storage."""
        env = {**os.environ, **self.env, "FACEFUSE_DATA_DIR": str(self.cli_dir)}
        return subprocess.run([*FACEFUSE, *args], env=env, capture_output=True, text=True, check=check, timeout=120)

    def db(self) -> PostgresDatabase:
        return PostgresDatabase(self.env["FACEFUSE_DATABASE_URL"])

    def client(self, base_url: str) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, trust_env=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres = components.start_postgres()
    s3 = components.start_moto()
    nodes: list[RunningServer] = []
    nginx: components.NginxServer | None = None
    try:
        env = {
            **s3.env,
            "FACEFUSE_DATABASE_URL": postgres.create_database("facefuse"),
            "FACEFUSE_STORAGE_URL": f"s3://{s3.create_bucket()}/facefuse",
            "FACEFUSE_WORKERS": "1",
        }
        root = tmp_path_factory.mktemp("cluster")
        first = start_server(root / "node0", extra_env=env)
        nodes.append(first)
        nodes.append(start_server(root / "node1", extra_env=env, known_key=(first.api_key, first.api_secret)))
        nginx = components.NginxServer([node.base_url.removeprefix("http://") for node in nodes])
        nginx.start()
        yield Cluster(postgres, s3, nodes, nginx, env, root / "cli")
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes:
            if node.process.poll() is None:
                stop_server(node)
        s3.stop()
        postgres.remove()


def fuse(
    client: httpx.Client, auth: dict[str, str], template: str = DEMO_TEMPLATE, rsp: str = "base64"
) -> httpx.Response:
    return client.post("/v3/facefuse", params=auth, json=fuse_body(b64(SELFIE), template, rsp))


def jpeg_of(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["media_info_list"][0]["media_data"])


# ------------------------------------------------------------------ any node answers any request


def test_every_node_is_ready_on_the_shared_database_and_storage(cluster: Cluster) -> None:
    for node in cluster.nodes:
        with cluster.client(node.base_url) as client:
            assert client.get("/readyz").json()["status"] == "ready"
    assert cluster.db().scalar("SELECT count(*) FROM api_keys") == 1  # the nodes made one first key between them
    assert cluster.db().scalar("SELECT count(*) FROM templates") == 1  # and one demo template


def test_a_result_link_made_on_one_node_is_served_by_every_node(cluster: Cluster) -> None:
    with cluster.client(cluster.nodes[0].base_url) as client:
        answer = fuse(client, cluster.auth, rsp="url")
        assert answer.status_code == 200, answer.text
        link = answer.json()["media_info_list"][0]["media_data"]
    path = "/v3/results/" + link.rsplit("/", 1)[1]
    bodies = set()
    for base in (cluster.nodes[0].base_url, cluster.nodes[1].base_url, cluster.nginx.base_url):
        with cluster.client(base) as client:
            fetched = client.get(path)
            assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
            bodies.add(fetched.content)
    assert len(bodies) == 1 and next(iter(bodies)).startswith(b"\xff\xd8")


def test_a_template_added_anywhere_is_used_everywhere_and_a_removed_one_refused_at_once(cluster: Cluster) -> None:
    added = cluster.cli("templates", "add", str(face(TEMPLATE_PHOTO)), "--id", "fromthecli0000001", "--json")
    assert json.loads(added.stdout)["template_id"] == "fromthecli0000001"
    clients = [cluster.client(node.base_url) for node in cluster.nodes]
    try:
        for client in clients:  # the next request of each node uses it
            assert jpeg_of(fuse(client, cluster.auth, "fromthecli0000001"))
        body = {"media_info_list": [{"media_data": b64(TEMPLATE_PHOTO), "media_profiles": {"media_data_type": "jpg"}}]}
        body["parameter"] = {"template_id": "fromnodeone000001"}
        created = clients[1].post("/v3/templates", params=cluster.auth, json=body)
        assert created.status_code == 200, created.text
        assert jpeg_of(fuse(clients[0], cluster.auth, "fromnodeone000001"))

        cluster.cli("templates", "remove", "fromthecli0000001")
        removed = clients[0].delete("/v3/templates/fromnodeone000001", params=cluster.auth)
        assert removed.status_code == 200, removed.text
        for client in clients:  # both nodes had both loaded and cached; neither uses them again
            for gone in ("fromthecli0000001", "fromnodeone000001"):
                assert_error(fuse(client, cluster.auth, gone), 400, 10011, "TEMPLATE_NOT_FOUND")
    finally:
        for client in clients:
            client.close()


def test_a_daily_quota_is_exact_across_nodes(cluster: Cluster) -> None:
    created = json.loads(
        cluster.cli("keys", "create", "--name", "quota", "--admin", "--daily-quota", "300", "--json").stdout
    )
    auth = {"api_key": created["api_key"], "api_secret": created["api_secret"]}
    bases = [node.base_url for node in cluster.nodes]

    def one(n: int) -> int:
        with cluster.client(bases[n % 2]) as client:
            return client.get("/v3/templates", params=auth).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(one, range(1000)))
    assert statuses == {200: 300, 429: 700}


# ------------------------------------------------------------------ faults under load


class Load:
    """Clients posting fusions through nginx until stopped; every answer is kept."""

    def __init__(self, cluster: Cluster, rsp: str = "base64") -> None:
        self.cluster = cluster
        self.rsp = rsp
        self.answers: list[tuple[int, dict[str, object] | None]] = []
        self.failures: list[BaseException] = []
        self.links: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(LOAD_CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self) -> None:
        body = json.dumps(fuse_body(b64(SELFIE), DEMO_TEMPLATE, self.rsp))
        headers = {"Content-Type": "application/json"}
        with self.cluster.client(self.cluster.nginx.base_url) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(
                        "/v3/facefuse",
                        params=self.cluster.auth,
                        content=body,
                        headers=headers,
                    )
                    is_json = answer.headers.get("content-type", "").startswith("application/json")
                    parsed = answer.json() if is_json else None
                    record = (answer.status_code, parsed)
                except BaseException as error:  # noqa: BLE001 - a hang-up or a timeout fails the test
                    with self._changed:
                        self.failures.append(error)
                        self._changed.notify_all()
                    return
                with self._changed:
                    self.answers.append(record)
                    if answer.status_code == 200 and self.rsp == "url" and parsed is not None:
                        self.links.append(parsed["media_info_list"][0]["media_data"])  # type: ignore[index]
                    self._changed.notify_all()

    def wait_for(self, condition: Callable[[list[tuple[int, dict[str, object] | None]]], bool]) -> int:
        """Block until condition(answers) holds or a client failed; answer how many there are."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self.failures) or condition(self.answers), timeout=600)
            assert not self.failures, self.failures
            assert condition(self.answers), "the load stopped making progress"
            return len(self.answers)


def successes(answers: list[tuple[int, dict[str, object] | None]], since: int = 0) -> int:
    return sum(1 for status, _ in answers[since:] if status == 200)


def test_postgresql_restarted_under_load_answers_busy_then_resumes_by_itself(cluster: Cluster) -> None:
    with Load(cluster) as load:
        load.wait_for(lambda a: successes(a) >= 4)
        cluster.postgres.stop("fast")
        stopped_at = len(load.answers)
        busy = lambda a: sum(1 for s, b in a[stopped_at:] if s == 503 and b and b["ErrorCode"] == 10301)  # noqa: E731
        load.wait_for(lambda a: busy(a) >= 2 * LOAD_CLIENTS)
        cluster.postgres.start()
        restarted_at = len(load.answers)
        load.wait_for(lambda a: successes(a, restarted_at) >= 2 * LOAD_CLIENTS)
    outcomes = Counter((status, body.get("ErrorCode") if body else None) for status, body in load.answers)
    assert set(outcomes) <= {(200, None), (503, 10301)}, outcomes  # never a 500, never another error
    for status, body in load.answers:
        if status == 503:
            assert body is not None and "database" in str(body["Data"]) and "Traceback" not in str(body["Data"])
    with cluster.client(cluster.nodes[1].base_url) as client:
        assert client.get("/readyz").status_code == 200


def test_kill_9_of_a_node_under_load_fails_no_request_and_loses_no_result(cluster: Cluster) -> None:
    doomed = cluster.nodes[1]
    with Load(cluster, rsp="url") as load:
        load.wait_for(lambda a: successes(a) >= 2 * LOAD_CLIENTS)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
        killed_at = len(load.answers)
        load.wait_for(lambda a: successes(a, killed_at) >= 3 * LOAD_CLIENTS)
    assert [status for status, _ in load.answers] == [200] * len(load.answers)
    with cluster.client(cluster.nginx.base_url) as client:  # every acknowledged result is there
        for link in load.links:
            assert client.get("/v3/results/" + link.rsplit("/", 1)[1]).status_code == 200


def test_object_storage_down_answers_a_clear_error_and_writes_nothing(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    db = cluster.db()
    results, templates = db.scalar("SELECT count(*) FROM results"), db.scalar("SELECT count(*) FROM templates")
    cluster.s3.stop()
    with cluster.client(node.base_url) as client:
        body = assert_error(fuse(client, cluster.auth, rsp="url"), 503, 10301, "SERVER_BUSY")
        assert "object storage is not answering" in body["Data"] and "nothing was stored" in body["Data"]
        photo = {"media_data": b64(TEMPLATE_PHOTO), "media_profiles": {"media_data_type": "jpg"}}
        added = client.post("/v3/templates", params=cluster.auth, json={"media_info_list": [photo]})
        assert "object storage is not answering" in assert_error(added, 503, 10301, "SERVER_BUSY")["Data"]
        assert client.get("/readyz").status_code == 503
        assert jpeg_of(fuse(client, cluster.auth))  # a loaded template needs no storage for a base64 answer
    assert db.scalar("SELECT count(*) FROM results") == results
    assert db.scalar("SELECT count(*) FROM templates") == templates
    added = cluster.cli("templates", "add", str(face(TEMPLATE_PHOTO)), check=False)
    assert added.returncode != 0 and "object storage is not answering" in added.stderr
    assert "Traceback" not in added.stderr
    assert db.scalar("SELECT count(*) FROM templates") == templates
