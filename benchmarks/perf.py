"""The performance benchmark of docs/performance.md (`make bench`).

    .venv/bin/python benchmarks/perf.py --faces-dir ../shared/faces [--out bench.json] [--quick]
        [--user-photo PHOTO] [--template-photo PHOTO]

In one run: the physical floor (base64 decode + full JPEG decode + face detection and
landmarks + JPEG encode of a result-sized image, nothing else; one run just before each
timed request of the same input) and the real service (`facefuse serve`, default
settings) on 127.0.0.1 for the same inputs: latency p50/p95/p99 with base64 and url
answers, throughput at concurrency 1/4/16 with 1 and 2 workers (both services up, runs
alternating) and where its CPU went, back-pressure beyond the queue, /healthz under load,
resident memory per worker after warm-up and after 1,000 requests, cold start, and the
machine's own two-core scaling (a work process's job alone and on every core at once,
no HTTP), measured between the loaded runs. Loopback only, bounded request counts. The
photos come from --faces-dir (never shipped; perfbench.inputs.choose_photos says which);
the report is printed with each target of the issue marked MET or MISS, and written as
JSON. It runs from a checkout of the repository (the perfbench package beside it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facefuse.workpool import freeze_startup_objects, single_threaded_libraries, tune_for_compute

# Before numpy loads: the floor runs in this process as the work processes run the
# service's jobs, and OpenBLAS's helper threads would spin beside the service's.
single_threaded_libraries()

import numpy as np  # noqa: E402
from perfbench.inputs import SIZES_MP, ComputeProbe, Input, choose_photos, make_input  # noqa: E402
from perfbench.load import (  # noqa: E402
    first_answers,
    floor_and_latency,
    fuse_body,
    latency,
    memory_run,
    saturation,
    throughput,
)
from perfbench.report import (  # noqa: E402
    Latencies,
    LoadCell,
    LoadRun,
    Machine,
    Percentiles,
    Report,
    ServiceResults,
    TemplateInfo,
    median_round,
    ratios,
    table_lines,
    targets,
    to_json,
)
from perfbench.service import Service, register_template, start_service  # noqa: E402
from PIL import Image  # noqa: E402

from facefuse.media.decode import decode_image  # noqa: E402
from facefuse.vision.detect import detect_faces  # noqa: E402

DEFAULT_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"


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
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(SIZES_MP[:2], 5, 12, 1, (1, 4), (1,), 20, 24, 1, 0)
        return cls(SIZES_MP, 40, 96, 8, (1, 4, 16), (1, 2), 1000, 64, 3, 25)


def run(faces_dir: Path, quick: bool, user_photo: Path | None = None, template_photo: Path | None = None) -> Report:
    plan = Plan.make(quick)
    tune_for_compute()  # the floor runs under the same allocator and OpenCV settings as the service
    user_path, template_path = choose_photos(faces_dir, user_photo, template_photo)
    photo = Image.open(user_path).convert("RGB")
    inputs = [make_input(photo, mp) for mp in plan.sizes]
    template_rgb = decode_image(template_path.read_bytes())
    load_before = os.getloadavg()[0]
    template = TemplateInfo(
        template_path.name,
        template_rgb.shape[1],
        template_rgb.shape[0],
        round(max(f.size for f in detect_faces(template_rgb))),
    )
    freeze_startup_objects()  # the load generator's own full collections are not the service's latency
    with tempfile.TemporaryDirectory(prefix="facefuse-bench-") as tmp:
        measured = _measure_service(Path(tmp) / "data", template_path, template_rgb, inputs, plan)
    machine = Machine(os.cpu_count(), load_before, os.getloadavg()[0])
    ratio = ratios(measured, machine.cpus)
    return Report(machine, template, [i.info() for i in inputs], measured, ratio, targets(measured, ratio))


def _measure_service(
    data_dir: Path, template_path: Path, template_rgb: np.ndarray, inputs: list[Input], plan: Plan
) -> ServiceResults:
    """Every service measurement. One service per worker count, all started at once on the
    same data dir; their throughput runs alternate in eight rounds (1 worker at c=1, 2
    workers at c=1; 2 then 1; 2 then 1; 1 then 2; twice; then c=4, ...) so that a machine
    slowing down for a while does not make one of them look better. Latency,
    back-pressure and memory run on the 1-worker service."""
    services: dict[int, Service] = {}
    start_s: dict[int, float] = {}
    first_ms: dict[int, list[float]] = {}
    try:
        services[1] = first = start_service(data_dir, 1, None)
        start_s[1] = first.cold_start_s
        key = (first.auth["api_key"], first.auth["api_secret"])
        template_id = register_template(data_dir, template_path)
        one_mp = next(i for i in inputs if i.nominal == 1.0)
        body = fuse_body(one_mp, template_id, "base64")
        latencies = _latencies(first, inputs, template_id, template_rgb, plan)
        for workers in plan.workers[1:]:
            services[workers] = start_service(data_dir, workers, key)
            start_s[workers] = services[workers].cold_start_s
            first_ms[workers] = first_answers(services[workers], body, workers)
        probe = ComputeProbe(one_mp, template_path.read_bytes(), plan.compute_runs) if plan.compute_runs else None
        try:
            cells = _load(services, body, plan, probe)
        finally:
            if probe is not None:
                probe.close()
        return ServiceResults(
            start_s=start_s,
            latencies=latencies,
            first_answers_ms=first_ms,
            throughput=cells,
            rss_mb={n: service.worker_rss_mb() for n, service in services.items()},
            compute_scaling=probe.result() if probe is not None else None,
            saturation=saturation(first, body, plan.saturation_concurrency, plan.saturation_rounds),
            memory=memory_run(first, body, plan.memory_requests),
            rss_mb_http_process=[first.http_rss_mb()],
        )
    finally:
        for service in services.values():
            service.stop()


def _load(
    services: dict[int, Service], body: bytes, plan: Plan, probe: ComputeProbe | None
) -> dict[int, list[LoadCell]]:
    for service in services.values():
        latency(service, body, 4)  # every worker warm
    cells: dict[int, list[LoadCell]] = {n: [] for n in services}
    for concurrency in plan.concurrencies:
        if probe is not None:
            probe.round()  # the machine's own scaling, next to each pair of loaded runs
        rounds: dict[int, list[LoadRun]] = {n: [] for n in services}
        for round_index in range(plan.throughput_rounds):
            order = list(services.items())
            for workers, service in order if round_index % 4 in (0, 3) else reversed(order):  # ABBA: a trend cancels
                rounds[workers].append(throughput(service, body, concurrency, plan.throughput_requests))
        for workers, runs in rounds.items():
            cells[workers].append(median_round(runs))
    return cells


def _latencies(
    service: Service, inputs: list[Input], template_id: str, template_rgb: np.ndarray, plan: Plan
) -> Latencies:
    floor: dict[str, Percentiles] = {}
    base64_out: dict[str, Percentiles] = {}
    for item in inputs:
        floor[item.label], base64_out[item.label] = floor_and_latency(
            service, item, fuse_body(item, template_id, "base64"), template_rgb, plan.runs
        )
    url_out = {i.label: latency(service, fuse_body(i, template_id, "url"), plan.runs) for i in inputs}
    return Latencies(floor, base64_out, url_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES, help="photos to benchmark with")
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--quick", action="store_true", help="a few requests, 1 worker, up to 1 MP (for CI)")
    parser.add_argument("--user-photo", type=Path, help="the user's photo (default: chosen from --faces-dir)")
    parser.add_argument(
        "--template-photo", type=Path, help="the template to register (default: chosen from --faces-dir)"
    )
    args = parser.parse_args(argv)
    if not args.faces_dir.is_dir():
        parser.error(f"--faces-dir {args.faces_dir} is not a directory")
    report = run(args.faces_dir, args.quick, args.user_photo, args.template_photo)
    args.out.write_text(to_json(report))
    for line in table_lines(report):
        print(line)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
