"""Scaled mode's benchmark (docs/deploy.md): nodes on PostgreSQL + S3 behind nginx, in one run.

    .venv/bin/python benchmarks/scale.py --faces-dir ../shared/faces [--requests 48] [--out scale.json]

Starts a PostgreSQL server (Debian's packages, run as the `postgres` user when root),
moto's S3 server and nginx with deploy/nginx-facefuse.conf, all on 127.0.0.1, and
`facefuse serve` nodes with one work process each and FACEFUSE_SPARE_CORES=0 (one node,
one core's worth of fusion). Then, in order:

  lookups     a template's revision check (the row read on every request) on SQLite and
              on PostgreSQL, in this process: what a shared registry costs per request
  latency     an embedded and a scaled node side by side, requests alternating, one at a
              time: p50 of a 1 MP photo into a registered template, base64 and url answers
  result save a url answer stored in S3 + PostgreSQL and in a data dir + SQLite: its JPEG
              alone (put), and the JPEG and its row as the answer waits for them (save)
  throughput  1 node (direct) and 2 nodes behind nginx, `--concurrency` clients, rounds
              alternating; answers per second, the best round of each compared; once as
              the processes come, once with each node on a core of its own (a machine each)

Beside each timed section it prints the share of the machine's CPU that processes
outside the run took meanwhile (a shared machine's other users), so a disturbed run shows.
  quota       1,000 requests spread over both nodes, key with a daily quota of 300
  postgres    PostgreSQL stopped and started under load through nginx: the outage's
              answers (status, time), and how long until the next success
  kill -9     one node killed under load through nginx: failed requests, retried ones
  storage     S3 stopped: the answer of a url fusion, and whether any row was written

Photos come from --faces-dir (perfbench.inputs.choose_photos); nothing is shipped.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # components: the PostgreSQL, S3 and nginx processes the tests start

import components  # noqa: E402
from perfbench.client import LoopbackClient  # noqa: E402
from perfbench.inputs import choose_photos, make_input  # noqa: E402
from perfbench.load import fuse_body  # noqa: E402
from perfbench.service import Service, child_pids, cpu_seconds, register_template, start_service  # noqa: E402

NODE_ENV = {"FACEFUSE_SPARE_CORES": "0", "FACEFUSE_DEMO_TEMPLATE": "false"}
TIMEOUT_S = 120.0
QUOTA, QUOTA_REQUESTS = 300, 1000


class Others:
    """The share of the machine's CPU that processes outside this run took meanwhile (other
    users of a shared machine): busy time from /proc/stat less the CPU time of this
    process and of every process the run started (nodes, nginx, PostgreSQL, moto)."""

    def __init__(self, roots: list[int], support: list[int] | None = None) -> None:
        self.roots = roots
        self.support = support or []  # nginx, PostgreSQL, moto: with this process, what is not a node

    def __enter__(self) -> Others:
        self._busy, self._ours, self._at = _machine_busy_s(), _tree_cpu_s(self.roots), time.monotonic()
        self._support = self._support_s()
        return self

    def __exit__(self, *_: object) -> None:
        machine = (time.monotonic() - self._at) * (os.cpu_count() or 1)
        others = (_machine_busy_s() - self._busy) - (_tree_cpu_s(self.roots) - self._ours)
        self.share = max(0.0, others / machine)
        self.support_share = (self._support_s() - self._support) / machine

    def _support_s(self) -> float:
        """This process alone (the load's clients; the nodes are its children) and the support trees."""
        return cpu_seconds(os.getpid()) + _tree_cpu_s(self.support) if self.support else 0.0


def _tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of the processes under roots (and the roots)."""
    pids, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in pids:
            pids.add(pid)
            todo += child_pids(pid) if Path(f"/proc/{pid}").exists() else []
    return sum(cpu_seconds(pid) for pid in pids)


def _machine_busy_s() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def post(client: LoopbackClient, auth: dict[str, str], body: bytes) -> tuple[float, int, bytes]:
    target = "/v3/facefuse?" + "&".join(f"{k}={v}" for k, v in auth.items())
    started = time.perf_counter()
    try:
        status, data = client.request("POST", target, body)
    except OSError:
        status, data = 0, b""  # no answer at all: a failed request
    return (time.perf_counter() - started) * 1000, status, data


def lookups(postgres_url: str, sqlite_path: Path, count: int = 2000) -> dict[str, float]:
    """Microseconds per template row read (the revision check), p50, on each database."""
    from facefuse.storage.db import SqliteDatabase
    from facefuse.storage.postgres import PostgresDatabase

    found: dict[str, float] = {}
    for name, db in (("sqlite", SqliteDatabase(sqlite_path)), ("postgresql", PostgresDatabase(postgres_url))):
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO templates (template_id, revision, name, format, width, height, face_count, faces_json,"
                " created_at) VALUES ('benchlookup00000001', 'r', 'n', 'jpeg', 1, 1, 1, '[]', 'now')"
                " ON CONFLICT (template_id) DO NOTHING"
            )
        times = []
        for _ in range(count):
            started = time.perf_counter()
            db.query_one("SELECT revision FROM templates WHERE template_id = ?", ("benchlookup00000001",))
            times.append((time.perf_counter() - started) * 1e6)
        found[name] = round(p50(times), 1)
        db.close()
    return found


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Every thread of pid and of the processes under it onto cpus: a node as if alone on a
    machine of that many cores (work processes started later inherit it)."""
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:
                continue  # a thread that ended meanwhile
        todo += child_pids(current)


def throughput_rounds(
    args: argparse.Namespace,
    one: Service,
    two: Service,
    nginx_url: str,
    body: bytes,
    roots: list[int],
    support: list[int],
) -> dict[str, Any]:
    """1 node direct vs 2 nodes behind nginx, as they are and with each node on a core of its
    own (two machines of one core each: the second core then does not serve the one node's
    HTTP process, which it does on a shared 2-core machine). The best round of each counts."""
    every = set(range(os.cpu_count() or 1))
    found: dict[str, Any] = {}
    for pinned in (False, True):
        for node, core in ((one, 0), (two, 1)):
            pin_tree(node.process.pid, {core} if pinned else every)
        kind = "a core per node" if pinned else "shared cores"
        runs: dict[str, list[tuple[float, float, float]]] = {"1 node": [], "2 nodes, nginx": []}
        for _ in range(args.throughput_rounds):  # rounds alternate, so a busy moment falls on both
            for name, base_url in zip(runs, (one.base_url, nginx_url)):
                with Others(roots, support) as others:
                    rps = throughput(base_url, one.auth, body, args.requests, args.concurrency)
                runs[name].append((round(rps, 2), round(others.share, 2), round(others.support_share, 2)))
        best = {name: max(rps for rps, _, _ in values) for name, values in runs.items()}
        found[kind] = {
            **{f"{name} (rps, others' CPU share, load+nginx+db CPU share)": values for name, values in runs.items()},
            "ratio": round(best["2 nodes, nginx"] / best["1 node"], 2),
        }
    for node in (one, two):
        pin_tree(node.process.pid, every)
    return found


def result_saves(
    jpeg: bytes, storage_url: str, endpoint: str, db_url: str, root: Path, count: int = 40
) -> dict[str, Any]:
    """ms p50 to store one url answer in S3 + PostgreSQL and in a data dir + SQLite, the two
    alternating: its JPEG alone (put), and JPEG and row as a url answer waits for them
    (save); and moto's own time for the put: an unsigned PUT of the same bytes with httpx,
    no SDK (moto takes it; a real S3 would not)."""
    from facefuse.storage.blobs import LocalBlobStore
    from facefuse.storage.db import SqliteDatabase
    from facefuse.storage.postgres import PostgresDatabase
    from facefuse.storage.results import ResultStore
    from facefuse.storage.s3 import S3BlobStore

    s3 = S3BlobStore(storage_url, endpoint)
    stores = {
        "s3 + postgresql": ResultStore(PostgresDatabase(db_url), s3, 3600),
        "data dir + sqlite": ResultStore(
            SqliteDatabase(root / "saves" / "facefuse.sqlite3"), LocalBlobStore(root / "saves"), 3600
        ),
    }
    raw_put = "moto's own time (unsigned httpx PUT) ms p50"
    times: dict[str, list[float]] = {f"{name} {step} ms p50": [] for step in ("put", "save") for name in stores}
    times[raw_put] = []
    with httpx.Client(trust_env=False, timeout=TIMEOUT_S) as raw:
        for n in range(count + 2):  # the first two warm the connections
            name = f"results/bench{n:04d}.jpg"
            steps: list[tuple[str, Callable[[], object]]] = []
            for kind, store in stores.items():
                steps.append((f"{kind} put ms p50", functools.partial(store.blobs.put, name, jpeg)))
                steps.append((f"{kind} save ms p50", functools.partial(store.save, jpeg)))
            steps.append((raw_put, functools.partial(raw.put, f"{endpoint}/{s3.bucket}/{s3.key(name)}", content=jpeg)))
            for measure, call in steps:
                started = time.perf_counter()
                call()
                if n >= 2:
                    times[measure].append((time.perf_counter() - started) * 1000)
    for store in stores.values():
        store.close()
        store.db.close()
    return {"bytes": len(jpeg), **{name: round(p50(values), 2) for name, values in times.items()}}


def throughput(base_url: str, auth: dict[str, str], body: bytes, requests: int, concurrency: int) -> float:
    """Answers per second for `requests` fusions sent by `concurrency` clients."""
    share = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]

    def client_loop(count: int) -> list[int]:
        with LoopbackClient(base_url, TIMEOUT_S) as client:
            return [post(client, auth, body)[1] for _ in range(count)]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = [s for part in pool.map(client_loop, share) for s in part]
    elapsed = time.perf_counter() - started
    assert statuses.count(200) == requests, Counter(statuses)
    return requests / elapsed


class Load:
    """Clients posting fusions through nginx until stopped; each answer as (time, ms, status)."""

    def __init__(self, base_url: str, auth: dict[str, str], body: bytes, clients: int) -> None:
        self.answers: list[tuple[float, float, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(base_url, auth, body)) for _ in range(clients)]

    def _loop(self, base_url: str, auth: dict[str, str], body: bytes) -> None:
        with LoopbackClient(base_url, TIMEOUT_S) as client:
            while not self._stop.is_set():
                ms, status, _ = post(client, auth, body)
                with self._lock:
                    self.answers.append((time.monotonic(), ms, status))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def until(self, condition: Any) -> None:
        while not condition(list(self.answers)):
            time.sleep(0.02)


def quota_run(nodes: list[Service], admin: dict[str, str], data_dir: Path, env: dict[str, str]) -> dict[str, int]:
    created = components_cli(data_dir, env, "keys", "create", "--name", "quota", "--admin", "--daily-quota", str(QUOTA))
    auth = {"api_key": created["api_key"], "api_secret": created["api_secret"]}

    def one(n: int) -> int:
        with httpx.Client(base_url=nodes[n % 2].base_url, trust_env=False, timeout=TIMEOUT_S) as client:
            return client.get("/v3/templates", params=auth).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(one, range(QUOTA_REQUESTS)))
    return {str(k): v for k, v in sorted(statuses.items())}


def components_cli(data_dir: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    import subprocess

    full = {**os.environ, **env, "FACEFUSE_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "facefuse.cli", *args, "--json"], env=full, capture_output=True, text=True
    )
    done.check_returncode()
    return dict(json.loads(done.stdout))


def postgres_outage(
    nginx: str, auth: dict[str, str], body: bytes, postgres: components.PostgresServer
) -> dict[str, Any]:
    with Load(nginx, auth, body, clients=4) as load:
        load.until(lambda a: sum(s == 200 for _, _, s in a) >= 4)
        stopped = time.monotonic()
        postgres.stop("fast")
        load.until(lambda a: sum(s == 503 for t, _, s in a if t > stopped) >= 12)
        postgres.start()
        started = time.monotonic()
        load.until(lambda a: any(s == 200 and t > started for t, _, s in a))
    during = [(ms, s) for t, ms, s in load.answers if stopped < t <= started]
    first_ok = min(t for t, _, s in load.answers if s == 200 and t > started)
    return {
        "answers during the outage": dict(Counter(str(s) for _, s in during)),
        "503 answer ms p50": round(p50([ms for ms, s in during if s == 503]), 1),
        "503 answer ms max": round(max((ms for ms, s in during if s == 503), default=float("nan")), 1),
        "first success after restart s": round(first_ok - started, 2),
        "other answers (500, none)": sum(s not in (200, 503) for _, _, s in load.answers),
    }


def kill_one(nginx: components.NginxServer, auth: dict[str, str], body: bytes, doomed: Service) -> dict[str, Any]:
    with Load(nginx.base_url, auth, body, clients=4) as load:
        load.until(lambda a: sum(s == 200 for _, _, s in a) >= 8)
        killed = time.monotonic()
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
        load.until(lambda a: sum(s == 200 for t, _, s in a if t > killed) >= 12)
    return {
        "requests": len(load.answers),
        "failed": sum(s != 200 for _, _, s in load.answers),
        "retried on the other node (nginx log)": nginx.retried(),
    }


def storage_outage(
    node: Service, auth: dict[str, str], body: bytes, s3: components.MotoServer, db_url: str
) -> dict[str, Any]:
    from facefuse.storage.postgres import PostgresDatabase

    db = PostgresDatabase(db_url)
    before = db.scalar("SELECT count(*) FROM results")
    s3.stop()
    with LoopbackClient(node.base_url, TIMEOUT_S) as client:
        ms, status, data = post(client, auth, body)
    answer = json.loads(data)
    return {
        "status": status,
        "ErrorCode": answer.get("ErrorCode"),
        "Data": answer.get("Data"),
        "ms": round(ms, 1),
        "rows written": db.scalar("SELECT count(*) FROM results") - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dir", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--requests", type=int, default=48, help="fusions per throughput round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--throughput-rounds", type=int, default=3, help="rounds of each; the best counts")
    parser.add_argument("--rounds", type=int, default=60, help="latency requests per mode and answer type")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="stop after lookups, latency and result save (what a storage change moves): no second node or faults",
    )
    args = parser.parse_args()

    user, template_photo = choose_photos(args.faces_dir)
    item = make_input(Image.open(user).convert("RGB"), 1.0)
    root = Path(tempfile.mkdtemp(prefix="facefuse-scale-"))
    postgres, s3 = components.start_postgres(), components.start_moto()
    os.environ.update(components.S3_ACCESS)  # this process stores results too (result save)
    nginx: components.NginxServer | None = None
    services: list[Service] = []
    report: dict[str, Any] = {"input": f"{item.width}x{item.height} ({item.megapixels:.2f} MP)"}
    try:
        db_url = postgres.create_database("facefuse")
        scaled_env = {
            **s3.env,
            **NODE_ENV,
            "FACEFUSE_DATABASE_URL": db_url,
            "FACEFUSE_STORAGE_URL": f"s3://{s3.create_bucket()}/facefuse",
        }
        report["revision check us p50"] = lookups(postgres.create_database(), root / "lookups.sqlite3")
        print("revision check (us, p50):", report["revision check us p50"], flush=True)

        embedded = start_service(root / "embedded", 1, None, NODE_ENV)
        scaled = start_service(root / "node0", 1, None, scaled_env)
        services += [embedded, scaled]
        template = {
            "embedded": register_template(root / "embedded", template_photo, NODE_ENV),
            "scaled": register_template(root / "node0", template_photo, scaled_env),
        }
        bodies = {rsp: fuse_body(item, template["scaled"], rsp) for rsp in ("base64", "url")}
        embedded_bodies = {rsp: fuse_body(item, template["embedded"], rsp) for rsp in ("base64", "url")}
        roots = [os.getpid(), postgres.pid, s3.process.pid if s3.process else 0]
        with Others([*roots, embedded.process.pid, scaled.process.pid]) as others:
            report["latency ms p50"] = latency_pair(embedded, scaled, embedded_bodies, bodies, args.rounds)
        report["latency ms p50"]["others' CPU share"] = round(others.share, 2)
        print("latency (ms, p50):", report["latency ms p50"], flush=True)
        with LoopbackClient(scaled.base_url, TIMEOUT_S) as client:
            link = json.loads(post(client, scaled.auth, bodies["url"])[2])["media_info_list"][0]["media_data"]
            jpeg = client.get(link)[1]
        storage_url = scaled_env["FACEFUSE_STORAGE_URL"]
        report["result save"] = result_saves(jpeg, storage_url, s3.endpoint, db_url, root)
        print("result save:", report["result save"], flush=True)
        if not args.latency_only:
            embedded.stop()
            services.remove(embedded)

            second = start_service(root / "node1", 1, (scaled.auth["api_key"], scaled.auth["api_secret"]), scaled_env)
            services.append(second)
            nginx = components.NginxServer([s.base_url.removeprefix("http://") for s in (scaled, second)])
            nginx.start()
            body = bodies["base64"]
            roots += [scaled.process.pid, second.process.pid, nginx.process.pid if nginx.process else 0]
            support = [nginx.process.pid if nginx.process else 0, postgres.pid, s3.process.pid if s3.process else 0]
            report["throughput rps"] = throughput_rounds(args, scaled, second, nginx.base_url, body, roots, support)
            print("throughput:", report["throughput rps"], flush=True)

            report["quota"] = quota_run([scaled, second], scaled.auth, root / "cli", scaled_env)
            print("quota:", report["quota"], flush=True)
            report["postgres restart"] = postgres_outage(nginx.base_url, scaled.auth, body, postgres)
            print("postgres restart:", report["postgres restart"], flush=True)
            report["kill -9"] = kill_one(nginx, scaled.auth, body, second)
            print("kill -9:", report["kill -9"], flush=True)
            report["storage down"] = storage_outage(scaled, scaled.auth, bodies["url"], s3, db_url)
            print("storage down:", report["storage down"], flush=True)
    finally:
        if nginx is not None:
            nginx.stop()
        for service in services:
            if service.process.poll() is None:
                service.stop()
        s3.stop()
        postgres.remove()
        shutil.rmtree(root, ignore_errors=True)
    print_targets(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def latency_pair(
    embedded: Service, scaled: Service, embedded_bodies: dict[str, bytes], bodies: dict[str, bytes], rounds: int
) -> dict[str, Any]:
    """p50 of each, and the median of the paired differences (scaled minus the embedded
    request just before it), which a slow moment of the machine moves less."""
    times: dict[str, list[float]] = {f"{mode} {rsp}": [] for mode in ("embedded", "scaled") for rsp in bodies}
    with LoopbackClient(embedded.base_url, TIMEOUT_S) as e, LoopbackClient(scaled.base_url, TIMEOUT_S) as s:
        for round_number in range(rounds + 2):
            for rsp in bodies:
                for mode, client, service, body in (
                    ("embedded", e, embedded, embedded_bodies[rsp]),
                    ("scaled", s, scaled, bodies[rsp]),
                ):
                    ms, status, _ = post(client, service.auth, body)
                    assert status == 200, status
                    if round_number >= 2:  # the first two rounds warm the connections and caches
                        times[f"{mode} {rsp}"].append(ms)
    found: dict[str, Any] = {name: round(p50(values), 1) for name, values in times.items()}
    for rsp in bodies:
        pairs = zip(times[f"scaled {rsp}"], times[f"embedded {rsp}"])
        found[f"added {rsp}"] = round(p50([scaled_ms - embedded_ms for scaled_ms, embedded_ms in pairs]), 1)
    return found


def print_targets(report: dict[str, Any]) -> None:
    def mark(ok: bool) -> str:
        return "MET " if ok else "MISS"

    lat, thr = report.get("latency ms p50", {}), report.get("throughput rps", {})
    pg, kill, store = report.get("postgres restart", {}), report.get("kill -9", {}), report.get("storage down", {})
    print("\ntargets")
    for kind, runs in thr.items():
        print(
            f"  {mark(runs['ratio'] >= 1.8)} 2 nodes x 1 worker behind nginx >= 1.8x 1 node ({kind}): {runs['ratio']}x"
        )
    if lat:
        print(f"  {mark(lat['added base64'] <= 3)} scaled adds <= 3 ms to the 1 MP p50: {lat['added base64']} ms")
        print(f"  {mark(lat['added url'] <= 5)} scaled adds <= 5 ms with rsp_media_type url: {lat['added url']} ms")
    if kill:
        print(f"  {mark(kill['failed'] == 0)} kill -9 of a node under load: {kill['failed']} failed")
    if pg:
        outage = pg["answers during the outage"]
        print(f"  {mark(pg['other answers (500, none)'] == 0)} PostgreSQL restart: outage answers {outage}")
    if store:
        ok = store["status"] == 503 and store["rows written"] == 0
        print(f"  {mark(ok)} object storage down: {store['status']} {store['ErrorCode']}, {store['rows written']} rows")
    if "quota" in report:
        print(f"  {mark(report['quota'].get('200') == QUOTA)} quota {QUOTA} over {QUOTA_REQUESTS}: {report['quota']}")


if __name__ == "__main__":
    main()
