"""Bounded soak on loopback: `facefuse serve` under steady overload for a set time.

    .venv/bin/python benchmarks/soak.py --duration 30m [--rate R] [--out soak.json]

It starts the real service (one worker, default settings except a short result TTL so
the sweeper runs), registers the benchmark template and sends an open-loop stream of
requests at --rate per second. Without --rate it first measures the one-worker
throughput exactly as benchmarks/perf.py does (same 1 MP photo, same template,
concurrency 4) and sends at twice that: the service must shed the excess with
10301 SERVER_BUSY at once and stay healthy.

The mix: 85 % base64 answers, 5 % result links (each link fetched back), 5 % invalid
base64 (expects 10004), 5 % unknown template (expects 10011). An answer is
*expected* when it is the mix item's answer or 503/10301; everything else
(other 5xx, wrong code, connection errors, timeouts, a bad link) is *unexpected*.
Printed and written: counts, latency p50/p99 of the successful answers, and the
resident memory of the server (baseline after warm-up, end, growth in %).
Loopback only; the photos come from --faces-dir and are never copied.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from perfbench.inputs import choose_photos, make_input
from perfbench.service import child_pids, free_port, rss_mb
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
BUSY = (503, 10301)
MAX_IN_FLIGHT = 256


# ------------------------------------------------------------------ the service


@dataclass
class Service:
    process: subprocess.Popen[str]
    base_url: str
    auth: dict[str, str]

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes together."""
        return sum(rss_mb(pid) for pid in [self.process.pid, *child_pids(self.process.pid)])

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9


def start_service(data_dir: Path, workers: int) -> Service:
    port = free_port()
    env = {
        **os.environ,
        "FACEFUSE_DATA_DIR": str(data_dir),
        "FACEFUSE_PORT": str(port),
        "FACEFUSE_HOST": "127.0.0.1",
        "FACEFUSE_WORKERS": str(workers),
        "PYTHONUNBUFFERED": "1",
        "FACEFUSE_RESULT_TTL_SECONDS": "120",
        "FACEFUSE_RESULT_CLEANUP_INTERVAL": "60",
    }
    log = open(data_dir.parent / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "facefuse.cli", "serve"], env=env, text=True, stdout=subprocess.PIPE, stderr=log
    )
    assert process.stdout is not None
    found: dict[str, str] = {}
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if len(found) < 2:
            line = process.stdout.readline()
            found.update({k: v for k, v in re.findall(r"(api_key|api_secret)=(\S+)", line)})
            continue
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                threading.Thread(target=process.stdout.read, daemon=True).start()
                return Service(process, base_url, found)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the service did not become ready; see {log.name}")


def register_template(data_dir: Path, photo: Path) -> str:
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "facefuse.cli", "templates", "add", str(photo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    return json.loads(done.stdout)["template_id"]


# ------------------------------------------------------------------ the requests


@dataclass(frozen=True)
class Kind:
    name: str
    share: float
    body: bytes
    expect: tuple[int, int]  # (HTTP status, ErrorCode or 0 for success)


def request_mix(jpeg: bytes, template_id: str) -> list[Kind]:
    photo = base64.b64encode(jpeg).decode()

    def body(media: str, template: str, rsp: str = "base64") -> bytes:
        return json.dumps(
            {
                "parameter": {"rsp_media_type": rsp, "faceFusePPType": template},
                "extra": {},
                "media_info_list": [{"media_data": media, "media_profiles": {"media_data_type": "jpg"}}],
            }
        ).encode()

    return [
        Kind("fuse_base64", 0.85, body(photo, template_id), (200, 0)),
        Kind("fuse_url", 0.05, body(photo, template_id, "url"), (200, 0)),
        Kind("bad_base64", 0.05, body("!!not base64!!", template_id), (400, 10004)),
        Kind("no_template", 0.05, body(photo, "zzzzzzzzzzzzzzzz0"), (400, 10011)),
    ]


@dataclass
class Tally:
    sent: int = 0
    expected: int = 0
    ok_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    unexpected: dict[str, int] = field(default_factory=dict)
    skipped_client_full: int = 0

    def bad(self, what: str) -> None:
        self.unexpected[what] = self.unexpected.get(what, 0) + 1


async def one_request(client: httpx.AsyncClient, service: Service, kind: Kind, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        answer = await client.post(
            "/v3/facefuse", params=service.auth, content=kind.body, headers={"Content-Type": "application/json"}
        )
        ms = (time.perf_counter() - started) * 1000
        code = int(answer.json().get("ErrorCode", 0)) if answer.status_code != 200 else 0
        outcome = (answer.status_code, code)
        if outcome == BUSY:
            tally.busy_ms.append(ms)
        elif outcome != kind.expect:
            tally.bad(f"{kind.name}: {outcome[0]} {outcome[1]}")
            return
        tally.expected += 1
        if outcome == (200, 0):
            tally.ok_ms.append(ms)
            if kind.name == "fuse_url":
                await check_link(client, answer.json()["media_info_list"][0]["media_data"], tally)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        tally.bad(f"{kind.name}: {type(exc).__name__}")


async def check_link(client: httpx.AsyncClient, url: str, tally: Tally) -> None:
    fetched = await client.get(url)
    if fetched.status_code != 200 or not fetched.content.startswith(b"\xff\xd8"):
        tally.bad(f"result link: {fetched.status_code}")


async def open_loop(
    service: Service, mix: list[Kind], rate: float, seconds: float, tally: Tally, rng: random.Random
) -> None:
    """Poisson arrivals at `rate` per second for `seconds`, however slow the answers."""
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=service.base_url, trust_env=False, timeout=60, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        next_at = start
        weights = [k.share for k in mix]
        while next_at < start + seconds:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += rng.expovariate(rate)
            tally.sent += 1
            if len(tasks) >= MAX_IN_FLIGHT:
                tally.skipped_client_full += 1
                continue
            task = asyncio.create_task(one_request(client, service, rng.choices(mix, weights)[0], tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)


def calibrate(service: Service, body: bytes, seconds: float, concurrency: int = 4) -> float:
    """Successful requests per second with `concurrency` closed-loop clients (as benchmarks/perf.py)."""
    done = 0
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def loop() -> None:
        nonlocal done
        with httpx.Client(base_url=service.base_url, trust_env=False, timeout=60) as client:
            while time.monotonic() < stop_at:
                answer = client.post(
                    "/v3/facefuse", params=service.auth, content=body, headers={"Content-Type": "application/json"}
                )
                with lock:
                    done += answer.status_code == 200

    started = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done / (time.monotonic() - started)


# ------------------------------------------------------------------ the run


def sample_memory(
    service: Service, samples: list[tuple[float, float]], stop: threading.Event, every: float = 5.0
) -> None:
    started = time.monotonic()
    while not stop.wait(every):
        samples.append((time.monotonic() - started, service.rss_mb()))


def memory_growth(samples: list[tuple[float, float]], seconds: float) -> dict[str, float | None]:
    """Baseline: mean RSS over the window after warm-up; end: mean over the last window."""
    window = max(30.0, min(120.0, seconds / 10))
    warm = [mb for t, mb in samples if window <= t < 2 * window]
    end = [mb for t, mb in samples if t >= seconds - window]
    if not warm or not end:
        return {"baseline_mb": None, "end_mb": None, "growth_pct": None}  # too short a run
    baseline, final = float(np.mean(warm)), float(np.mean(end))
    return {
        "baseline_mb": round(baseline, 1),
        "end_mb": round(final, 1),
        "max_mb": round(max(mb for _, mb in samples), 1),
        "growth_pct": round(100 * (final - baseline) / baseline, 2),
    }


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarise(tally: Tally, memory: dict[str, float | None], rate: float, seconds: float) -> dict[str, object]:
    return {
        "duration_s": seconds,
        "rate_per_s": round(rate, 2),
        "sent": tally.sent,
        "answered_as_expected": tally.expected,
        "ok": len(tally.ok_ms),
        "busy_503": len(tally.busy_ms),
        "busy_p99_ms": percentile(tally.busy_ms, 99),
        "unexpected": sum(tally.unexpected.values()),
        "unexpected_by_kind": tally.unexpected,
        "skipped_client_full": tally.skipped_client_full,
        "ok_p50_ms": percentile(tally.ok_ms, 50),
        "ok_p99_ms": percentile(tally.ok_ms, 99),
        "ok_per_s": round(len(tally.ok_ms) / seconds, 2),
        "memory": memory,
    }


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("a duration such as 90, 90s, 10m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("10m"))
    parser.add_argument("--rate", type=float, help="requests per second (default: 2x measured throughput)")
    parser.add_argument("--calibrate", type=parse_duration, default=30.0, help="seconds measuring throughput")
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="facefuse-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        user_photo, template_photo = choose_photos(args.faces_dir)
        template_id = register_template(data_dir, template_photo)
        jpeg = make_input(Image.open(user_photo).convert("RGB"), 1.0).jpeg
        service = start_service(data_dir, workers=1)
        try:
            report = run(service, request_mix(jpeg, template_id), args)
        finally:
            report_exit = service.stop()
        report["server_exit_code"] = report_exit
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop too.
    return 0 if report["unexpected"] == 0 and report_exit in (0, -15) else 1


def run(service: Service, mix: list[Kind], args: argparse.Namespace) -> dict[str, object]:
    measured = None
    rate = args.rate
    if rate is None:
        measured = calibrate(service, mix[0].body, args.calibrate)
        rate = 2 * measured
        print(f"one-worker throughput {measured:.2f} req/s; soaking at {rate:.2f} req/s", flush=True)
    tally, samples, stop = Tally(), [(0.0, service.rss_mb())], threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(service, samples, stop), daemon=True)
    sampler.start()
    reporter = threading.Thread(target=progress, args=(tally, samples, stop), daemon=True)
    reporter.start()
    asyncio.run(open_loop(service, mix, rate, args.duration, tally, random.Random(args.seed)))
    stop.set()
    sampler.join()
    report = summarise(tally, memory_growth(samples, args.duration), rate, args.duration)
    report["measured_throughput_per_s"] = measured
    return report


def progress(tally: Tally, samples: list[tuple[float, float]], stop: threading.Event) -> None:
    started = time.monotonic()
    while not stop.wait(60):
        recent = tally.ok_ms[-2000:] or [float("nan")]
        print(
            f"{(time.monotonic() - started) / 60:5.1f} min: sent {tally.sent} ok {len(tally.ok_ms)} "
            f"busy {len(tally.busy_ms)} unexpected {sum(tally.unexpected.values())} "
            f"p99 {np.percentile(recent, 99):.0f} ms rss {samples[-1][1]:.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
