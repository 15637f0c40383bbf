"""Performance benchmark: `facefuse bench [--faces-dir DIR] [--out bench.json] [--quick]`.

In one run: the physical floor (base64 decode + JPEG decode + face detection and
landmarks + JPEG encode, nothing else) and the real service on 127.0.0.1 for the same
inputs: latency p50/p95/p99, throughput at concurrency 1/4/16 with 1 and 2 workers,
/healthz under saturation, resident memory per worker, cold start. Loopback only,
bounded request counts. The photos come from --faces-dir (never shipped).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from facefuse.media.decode import decode_base64, decode_image
from facefuse.media.encode import encode_jpeg
from facefuse.vision.detect import detect_faces

USER_PHOTO = "deepface__img2.jpg"  # 1536x1152 frontal portrait
TEMPLATE_PHOTO = "face_recognition__examples_knn_examples_train_biden_biden2.jpg"
SIZES_MP = (0.25, 1.0, 4.0, 16.0)
MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096


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


def measure_floor(item: Input, template_shape: tuple[int, int, int], runs: int) -> dict[str, float]:
    """base64 text -> bytes -> pixels -> faces, plus encoding a template-sized result."""
    text = base64.b64encode(item.jpeg).decode()
    canvas = np.full(template_shape, 128, np.uint8)
    samples = []
    for index in range(runs + 2):
        started = time.perf_counter()
        rgb = decode_image(decode_base64(text))
        faces = detect_faces(rgb)
        encode_jpeg(canvas)
        if index >= 2:  # the first runs warm the models up
            samples.append((time.perf_counter() - started) * 1000)
        assert faces, "the benchmark photo must have a face"
    return percentiles(samples)


# ------------------------------------------------------------------ the service

@dataclass
class Service:
    process: subprocess.Popen[str]
    base_url: str
    auth: dict[str, str]
    cold_start_s: float

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each process serving requests (the workers, or the one)."""
        children = _children(self.process.pid)
        pids = children or [self.process.pid]
        return [_rss_mb(pid) for pid in pids]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_service(data_dir: Path, workers: int, key: tuple[str, str] | None) -> Service:
    port = _free_port()
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(data_dir), "FACEFUSE_PORT": str(port),
           "FACEFUSE_HOST": "127.0.0.1", "FACEFUSE_WORKERS": str(workers), "PYTHONUNBUFFERED": "1",
           "FACEFUSE_QUEUE_SIZE": "64"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "facefuse.cli", "serve"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    api_key, secret = key or ("", "")
    base_url = f"http://127.0.0.1:{port}"
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
        time.sleep(0.05)
    process.kill()
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


def post(client: httpx.Client, service: Service, body: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.post("/v3/facefuse", params=service.auth, content=body,
                           headers={"Content-Type": "application/json"})
    return (time.perf_counter() - started) * 1000, response.status_code


def latency(service: Service, body: bytes, count: int) -> dict[str, float]:
    with httpx.Client(base_url=service.base_url, trust_env=False, timeout=60) as client:
        for _ in range(3):
            post(client, service, body)
        samples = []
        for _ in range(count):
            ms, status = post(client, service, body)
            if status != 200:
                raise RuntimeError(f"request failed with {status}")
            samples.append(ms)
    return percentiles(samples)


def throughput(service: Service, body: bytes, concurrency: int, count: int) -> dict[str, float]:
    """Requests per second with `concurrency` clients, and /healthz latency meanwhile."""
    statuses: list[int] = []
    health: list[float] = []
    done = threading.Event()

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=service.base_url, trust_env=False, timeout=120) as client:
            for _ in range(n):
                statuses.append(post(client, service, body)[1])

    def health_loop() -> None:
        with httpx.Client(base_url=service.base_url, trust_env=False, timeout=10) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get("/healthz")
                health.append((time.perf_counter() - started) * 1000)
                time.sleep(0.05)

    per_client = max(1, count // concurrency)
    watcher = threading.Thread(target=health_loop, daemon=True)
    watcher.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, [per_client] * concurrency))
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    ok = statuses.count(200)
    return {"concurrency": concurrency, "requests": len(statuses), "ok": ok,
            "busy_503": statuses.count(503), "rps": ok / elapsed,
            "healthz_p99_ms": float(np.percentile(health, 99)) if health else float("nan"),
            "healthz_max_ms": max(health) if health else float("nan")}


def memory_run(service: Service, body: bytes, count: int) -> dict[str, float]:
    before = service.worker_rss_mb()
    with ThreadPoolExecutor(2) as pool:
        def run(n: int) -> None:
            with httpx.Client(base_url=service.base_url, trust_env=False, timeout=60) as client:
                for _ in range(n):
                    post(client, service, body)
        list(pool.map(run, [count // 2, count - count // 2]))
    after = service.worker_rss_mb()
    return {"requests": count, "rss_mb_after_warmup": max(before), "rss_mb_after": max(after),
            "growth_pct": 100 * (max(after) - max(before)) / max(before)}


# ------------------------------------------------------------------ the run

def run(faces_dir: Path, quick: bool) -> dict[str, object]:
    photo = Image.open(faces_dir / USER_PHOTO).convert("RGB")
    sizes = SIZES_MP[:2] if quick else SIZES_MP
    inputs = [make_input(photo, mp) for mp in sizes]
    template_shape = np.asarray(Image.open(faces_dir / TEMPLATE_PHOTO).convert("RGB")).shape
    runs = 5 if quick else 30
    report: dict[str, object] = {"inputs": [{"label": i.label, "width": i.width, "height": i.height,
                                             "bytes": len(i.jpeg), "jpeg_quality": i.quality} for i in inputs]}
    report["floor_ms"] = {i.label: measure_floor(i, template_shape, runs) for i in inputs}
    one_mp = inputs[1]
    with tempfile.TemporaryDirectory(prefix="facefuse-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        service = start_service(data_dir, 1, None)
        key = (service.auth["api_key"], service.auth["api_secret"])
        try:
            report["cold_start_s"] = service.cold_start_s
            template_id = register_template(data_dir, faces_dir / TEMPLATE_PHOTO)
            report["service_ms"] = {i.label: latency(service, fuse_body(i, template_id, "base64"), runs)
                                    for i in inputs}
            report["service_url_out_ms"] = latency(service, fuse_body(one_mp, template_id, "url"), runs)
            body = fuse_body(one_mp, template_id, "base64")
            report["throughput_1_worker"] = [throughput(service, body, c, 16 if quick else 96)
                                             for c in ((1, 4) if quick else (1, 4, 16))]
            report["memory_1_worker"] = memory_run(service, body, 40 if quick else 1000)
        finally:
            service.stop()
        if not quick:
            service = start_service(data_dir, 2, key)
            try:
                latency(service, body, 4)
                report["throughput_2_workers"] = [throughput(service, body, c, 96) for c in (1, 4, 16)]
                report["rss_mb_per_worker_2_workers"] = service.worker_rss_mb()
            finally:
                service.stop()
    report["ratios"] = ratios(report)
    return report


def ratios(report: dict[str, object]) -> dict[str, float]:
    floor, service = report["floor_ms"], report["service_ms"]  # type: ignore[assignment]
    out = {f"p50_over_floor_{label}": service[label]["p50"] / floor[label]["p50"] for label in service}  # type: ignore[index]
    if "throughput_2_workers" in report:
        best = lambda runs: max(r["rps"] for r in runs)  # noqa: E731
        out["two_workers_over_one"] = best(report["throughput_2_workers"]) / best(report["throughput_1_worker"])  # type: ignore[arg-type]
    return out


def print_table(report: dict[str, object]) -> None:
    print(f"{'input':>8} {'size':>11} {'floor p50':>10} {'svc p50':>8} {'p95':>7} {'p99':>7} {'ratio':>6}")
    for item in report["inputs"]:  # type: ignore[attr-defined]
        label = item["label"]
        floor, svc = report["floor_ms"][label], report["service_ms"][label]  # type: ignore[index]
        print(f"{label:>8} {item['width']:>5}x{item['height']:<5} {floor['p50']:>8.1f}ms {svc['p50']:>6.1f}ms "
              f"{svc['p95']:>5.1f}ms {svc['p99']:>5.1f}ms {svc['p50'] / floor['p50']:>5.2f}x")
    url = report["service_url_out_ms"]
    print(f"url out, 1 MP: p50 {url['p50']:.1f} ms  p95 {url['p95']:.1f} ms  p99 {url['p99']:.1f} ms")  # type: ignore[index]
    for key in ("throughput_1_worker", "throughput_2_workers"):
        for r in report.get(key, []):  # type: ignore[attr-defined]
            print(f"{key}: c={r['concurrency']:<2} {r['rps']:6.1f} req/s  ok {r['ok']}/{r['requests']}  "
                  f"busy {r['busy_503']}  healthz p99 {r['healthz_p99_ms']:.1f} ms max {r['healthz_max_ms']:.1f} ms")
    memory = report["memory_1_worker"]
    print(f"memory (1 worker): {memory['rss_mb_after_warmup']:.0f} MB after warm-up, "  # type: ignore[index]
          f"{memory['rss_mb_after']:.0f} MB after {memory['requests']} requests ({memory['growth_pct']:+.1f} %)")  # type: ignore[index]
    if "rss_mb_per_worker_2_workers" in report:
        print(f"memory (2 workers): {', '.join(f'{v:.0f} MB' for v in report['rss_mb_per_worker_2_workers'])}")  # type: ignore[union-attr]
    print(f"cold start to /readyz: {report['cold_start_s']:.2f} s")
    print("ratios: " + "  ".join(f"{k} {v:.2f}" for k, v in report["ratios"].items()))  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
