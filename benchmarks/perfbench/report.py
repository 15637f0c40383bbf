"""The benchmark's results as typed records, the ratios and targets drawn from them, the
printed table (each target MET or MISS) and the JSON report.

The JSON keeps one flat object per run, as earlier runs wrote it, so two runs compare key by
key: per worker count `start_s_<n>_worker`, `throughput_<n>_worker`, `rss_mb_<n>_worker`,
`first_answers_ms_<n>_worker`; the one-worker service's `saturation_1_worker` and
`memory_1_worker`. A value that could not be measured (NaN) is written as null."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import numpy as np

P50_TARGETS = {"0.25 MP": 2.0, "1 MP": 2.0, "4 MP": 3.0, "16 MP": 4.0}


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Percentiles:
        values = np.asarray(samples)
        return cls(
            float(np.percentile(values, 50)),
            float(np.percentile(values, 95)),
            float(np.percentile(values, 99)),
            len(samples),
        )


@dataclass(frozen=True)
class LoadRun:
    """One loaded run: `concurrency` clients sent `requests` requests in all."""

    concurrency: int
    requests: int
    ok: int
    busy_503: int
    other: int
    rps: float  # fused answers per second
    ok_p50_ms: float
    ok_p99_ms: float
    busy_p99_ms: float  # NaN when no request was refused
    healthz_p99_ms: float
    healthz_max_ms: float
    cpu_ms_http: float  # CPU per fused answer: the HTTP process,
    cpu_ms_work: float  # the work processes,
    cpu_ms_client: float  # this load generator (it shares the cores)
    idle_pct: float  # of the machine's CPU time
    steal_ms: float  # the host ran something else on this machine's CPUs


@dataclass(frozen=True)
class LoadCell(LoadRun):
    """The round of median rps (or busy p99) of a level's rounds, with every round's req/s,
    busy p99 (when that chose it) and host steal, and the worst /healthz of them all."""

    rounds_rps: list[float] = field(default_factory=list)
    rounds_busy_p99_ms: list[float] | None = None
    rounds_steal_ms: list[float] = field(default_factory=list)


def median_round(runs: list[LoadRun], by: Literal["rps", "busy_p99_ms"] = "rps") -> LoadCell:
    """The round of median `by` (the lower middle one of an even number). A shared host's
    speed moves within minutes: the best single round of each service would tell more about
    when it ran than about the service."""

    def value(run: LoadRun) -> float:
        measured = run.rps if by == "rps" else run.busy_p99_ms
        return measured if np.isfinite(measured) else float("inf")

    median = sorted(runs, key=value)[(len(runs) - 1) // 2]
    chosen = {f.name: getattr(median, f.name) for f in fields(LoadRun)}
    chosen["healthz_p99_ms"] = max(r.healthz_p99_ms for r in runs)
    chosen["healthz_max_ms"] = max(r.healthz_max_ms for r in runs)
    return LoadCell(
        **chosen,
        rounds_rps=[r.rps for r in runs],
        rounds_busy_p99_ms=[r.busy_p99_ms for r in runs] if by == "busy_p99_ms" else None,
        rounds_steal_ms=[r.steal_ms for r in runs],
    )


@dataclass(frozen=True)
class ComputeScaling:
    """The machine's own scaling, no HTTP: a job alone and one per core at once."""

    cores: int
    alone_ms_p50: float
    together_ms_p50: list[float]
    speedup: float


@dataclass(frozen=True)
class MemoryRun:
    requests: int
    rss_mb_after_warmup: float
    rss_mb_after: float
    growth_pct: float


@dataclass(frozen=True)
class Latencies:
    """Per input label: the floor, and the service with base64 and with url answers."""

    floor_ms: dict[str, Percentiles]
    service_ms: dict[str, Percentiles]
    service_url_out_ms: dict[str, Percentiles]


@dataclass(frozen=True)
class ServiceResults:
    """Everything measured on the running services (keyed by worker count)."""

    start_s: dict[int, float]
    latencies: Latencies  # on the 1-worker service
    first_answers_ms: dict[int, list[float]]  # services started after the first
    throughput: dict[int, list[LoadCell]]
    rss_mb: dict[int, list[float]]  # each work process after its load
    compute_scaling: ComputeScaling | None
    saturation: LoadCell  # 1 worker
    memory: MemoryRun  # 1 worker
    rss_mb_http_process: list[float]


@dataclass(frozen=True)
class Machine:
    cpus: int | None
    load_before: float
    load_after: float


@dataclass(frozen=True)
class TemplateInfo:
    photo: str
    width: int
    height: int
    face_px: int


@dataclass(frozen=True)
class InputInfo:
    label: str
    width: int
    height: int
    bytes: int
    jpeg_quality: int


@dataclass(frozen=True)
class Ratios:
    p50_over_floor: dict[str, float]
    two_workers_over_one: float | None = None
    two_workers_over_one_ceiling: float | None = None  # if no core ever idled
    two_workers_over_one_paired: float | None = None
    cores_compute_speedup: float | None = None
    two_workers_over_one_of_machine: float | None = None  # of what the machine gives

    def named(self) -> dict[str, float]:
        out = {f"p50_over_floor_{label}": value for label, value in self.p50_over_floor.items()}
        for name in (
            "two_workers_over_one",
            "two_workers_over_one_ceiling",
            "two_workers_over_one_paired",
            "cores_compute_speedup",
            "two_workers_over_one_of_machine",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class Report:
    machine: Machine
    template: TemplateInfo
    inputs: list[InputInfo]
    service: ServiceResults
    ratios: Ratios
    targets: dict[str, bool]


def ratios(service: ServiceResults, cpus: int | None) -> Ratios:
    lat = service.latencies
    p50_over_floor = {label: lat.service_ms[label].p50 / lat.floor_ms[label].p50 for label in lat.service_ms}
    if 2 not in service.throughput:
        scaling = service.compute_scaling
        return Ratios(p50_over_floor, cores_compute_speedup=scaling.speedup if scaling else None)
    one, two = _best_loaded(service.throughput[1]), _best_loaded(service.throughput[2])
    over_one = two.rps / one.rps
    # The most two work processes could give on this machine if no core ever idled and
    # a process ran as fast beside another as alone: the cores over the CPU a request
    # takes everywhere (HTTP process and load generator included), over one worker.
    per_request = one.cpu_ms_work + two.cpu_ms_http + two.cpu_ms_client
    ceiling = ((cpus or 1) * 1000 / per_request) / one.rps
    paired = paired_ratios(service.throughput[1], service.throughput[2])
    speedup = service.compute_scaling.speedup if service.compute_scaling else None
    return Ratios(
        p50_over_floor,
        over_one,
        ceiling,
        float(np.median(paired)) if paired else None,
        speedup,
        over_one / speedup if speedup else None,
    )


def paired_ratios(one: list[LoadCell], two: list[LoadCell]) -> list[float]:
    """2 workers over 1 in each round where both had more clients than workers, the two
    runs back to back: seconds apart, so the host's drift over the minutes of the whole
    run (which the best cells of each can catch at different speeds) mostly cancels."""
    return [
        b / a
        for cell_one, cell_two in zip(one, two)
        if cell_one.concurrency > 2
        for a, b in zip(cell_one.rounds_rps, cell_two.rounds_rps)
    ]


def _best_loaded(runs: list[LoadCell]) -> LoadCell:
    """The fastest cell with more clients than workers, as the paired rounds (one client
    at a time gives a second worker nothing to do, and lets one worker's lone requests take
    the idle core: facefuse.parallel)."""
    loaded = [r for r in runs if r.concurrency > 2]
    return max(loaded or runs, key=lambda r: r.rps)


def targets(service: ServiceResults, ratio: Ratios) -> dict[str, bool]:
    """Each target of the issue that this run measured: met or not."""
    met = {
        f"p50 {label} <= {limit:g}x floor": ratio.p50_over_floor[label] <= limit
        for label, limit in P50_TARGETS.items()
        if label in ratio.p50_over_floor
    }
    if ratio.two_workers_over_one is not None:
        scaling = ratio.two_workers_over_one_paired
        met["2 workers >= 1.8x 1 worker (paired rounds)"] = (
            scaling if scaling is not None else ratio.two_workers_over_one
        ) >= 1.8
    loaded: list[LoadRun] = [r for runs in service.throughput.values() for r in runs]
    loaded.append(service.saturation)
    met["/healthz <= 50 ms under load (p99)"] = all(r.healthz_p99_ms <= 50 for r in loaded)
    saturation = service.saturation
    met["full queue: busy answers at once (p99 <= 50 ms)"] = saturation.busy_503 > 0 and saturation.busy_p99_ms <= 50
    every_rss = [mb for mbs in service.rss_mb.values() for mb in mbs] + service.rss_mb_http_process
    met["memory <= 500 MB per worker"] = max(service.memory.rss_mb_after, *every_rss) <= 500
    met["memory flat over the run (<= +10 %)"] = service.memory.growth_pct <= 10
    return met


def as_json_object(report: Report) -> dict[str, object]:
    """The report as one flat object, in the order the measurements are taken."""
    s = report.service
    later = [n for n in s.start_s if n != 1]
    out: dict[str, object] = {
        "machine": asdict(report.machine),
        "template": asdict(report.template),
        "inputs": [asdict(i) for i in report.inputs],
        "start_s_1_worker": s.start_s[1],
        **{
            name: {label: asdict(p) for label, p in getattr(s.latencies, name).items()}
            for name in ("floor_ms", "service_ms", "service_url_out_ms")
        },
    }
    for n in later:
        out[f"start_s_{n}_worker"] = s.start_s[n]
        out[f"first_answers_ms_{n}_worker"] = s.first_answers_ms[n]
    out.update({f"throughput_{n}_worker": [_cell(c) for c in cells] for n, cells in s.throughput.items()})
    out.update({f"rss_mb_{n}_worker": mbs for n, mbs in s.rss_mb.items()})
    if s.compute_scaling is not None:
        out["compute_scaling"] = asdict(s.compute_scaling)
    out["saturation_1_worker"] = _cell(s.saturation)
    out["memory_1_worker"] = asdict(s.memory)
    out["rss_mb_http_process"] = s.rss_mb_http_process
    out["ratios"] = report.ratios.named()
    out["targets"] = report.targets
    return out


def _cell(cell: LoadCell) -> dict[str, object]:
    return {name: value for name, value in asdict(cell).items() if value is not None}


def to_json(report: Report) -> str:
    """The report as strict JSON: a value that could not be measured (NaN) becomes null."""

    def clean(value: object) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(as_json_object(report)), indent=1, allow_nan=False)


def table_lines(report: Report) -> list[str]:
    s, t, lat = report.service, report.template, report.service.latencies
    lines = [
        f"template {t.photo} {t.width}x{t.height}, face {t.face_px} px; "
        f"{report.machine.cpus} cpus, load {report.machine.load_before:.2f} before",
        f"{'input':>8} {'size':>11} {'floor p50':>10} {'svc p50':>8} {'p95':>7} {'p99':>7} "
        f"{'ratio':>6} {'target':>6}  {'url p50':>8} {'url p99':>8}",
    ]
    for item in report.inputs:
        floor, svc, url = lat.floor_ms[item.label], lat.service_ms[item.label], lat.service_url_out_ms[item.label]
        lines.append(
            f"{item.label:>8} {item.width:>5}x{item.height:<5} {floor.p50:>8.1f}ms {svc.p50:>6.1f}ms "
            f"{svc.p95:>5.1f}ms {svc.p99:>5.1f}ms {svc.p50 / floor.p50:>5.2f}x "
            f"{P50_TARGETS[item.label]:>5g}x  {url.p50:>6.1f}ms {url.p99:>6.1f}ms"
        )
    named = [(f"throughput_{n}_worker", cells) for n, cells in s.throughput.items()]
    for key, cells in [*named, ("saturation_1_worker", [s.saturation])]:
        for r in cells:
            each = f" (rounds {'/'.join(f'{rps:.1f}' for rps in r.rounds_rps)})" if len(r.rounds_rps) > 1 else ""
            busy_rounds = r.rounds_busy_p99_ms or []
            busy_each = f", rounds {'/'.join(f'{ms:.0f}' for ms in busy_rounds)}" if len(busy_rounds) > 1 else ""
            steal = sum(r.rounds_steal_ms or [r.steal_ms])
            lines.append(
                f"{key}: c={r.concurrency:<2} {r.rps:6.1f} req/s{each}  ok {r.ok}/{r.requests} "
                f"(p50 {r.ok_p50_ms:.0f} ms, p99 {r.ok_p99_ms:.0f} ms)  busy {r.busy_503} "
                f"(p99 {r.busy_p99_ms:.1f} ms{busy_each})  healthz p99 {r.healthz_p99_ms:.1f} ms "
                f"max {r.healthz_max_ms:.1f} ms  cpu/ok: http {r.cpu_ms_http:.1f} "
                f"work {r.cpu_ms_work:.1f} client {r.cpu_ms_client:.1f} ms, idle {r.idle_pct:.0f} %, "
                f"host steal {steal:.0f} ms"
            )
    memory = s.memory
    lines.append(
        f"memory (1 worker): {memory.rss_mb_after_warmup:.0f} MB after warm-up, "
        f"{memory.rss_mb_after:.0f} MB after {memory.requests} more requests "
        f"({memory.growth_pct:+.1f} %)"
    )
    for n, mbs in s.rss_mb.items():
        lines.append(f"memory per work process ({n} worker), after its load: {', '.join(f'{v:.0f} MB' for v in mbs)}")
    lines.append(
        f"memory HTTP process (no models), after its load: {', '.join(f'{v:.0f} MB' for v in s.rss_mb_http_process)}"
    )
    starts = [f"{n} worker {seconds:.2f} s" for n, seconds in s.start_s.items()]
    lines.append("cold start to /readyz: " + ", ".join(starts) + " (the first on a fresh data dir)")
    for n, answers in s.first_answers_ms.items():
        lines.append(
            f"first answers after start ({n} workers, one client each): {', '.join(f'{ms:.0f}' for ms in answers)} ms"
        )
    scaling = s.compute_scaling
    if scaling is not None:
        together = "/".join(f"{ms:.1f}" for ms in scaling.together_ms_p50)
        lines.append(
            f"machine, no HTTP: a 1 MP job {scaling.alone_ms_p50:.1f} ms alone, {together} ms with "
            f"one per core at once: {scaling.cores} cores give {scaling.speedup:.2f}x one"
        )
    lines.append("ratios: " + "  ".join(f"{k} {v:.2f}" for k, v in report.ratios.named().items()))
    lines.extend(f"target {'MET ' if ok else 'MISS'}  {name}" for name, ok in report.targets.items())
    return lines
