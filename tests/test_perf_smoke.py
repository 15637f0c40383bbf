"""benchmarks/perf.py --quick runs end to end and writes every section; its parts
(benchmarks/perfbench) compute what they should from given numbers.

No timing assertions (timed tests are flaky on shared machines): this proves the script
works, talks to a real server on 127.0.0.1 and writes a complete, valid JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import FACES, REPO, face

sys.path.insert(0, str(REPO / "benchmarks"))  # the perfbench package, as the script finds it

from perfbench.inputs import ComputeProbe, choose_photos, make_input  # noqa: E402
from perfbench.report import LoadRun, median_round, paired_ratios  # noqa: E402


def test_bench_quick_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "perf.py"), "--quick", "--faces-dir", str(FACES), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold start to /readyz" in done.stdout and "target " in done.stdout
    report = json.loads(out.read_text(), parse_constant=_refuse)  # strict: no NaN or Infinity
    for label in ("0.25 MP", "1 MP"):
        assert report["floor_ms"][label]["p50"] > 0
        assert report["service_ms"][label]["n"] == 5 and report["service_ms"][label]["p50"] > 0
        assert report["service_url_out_ms"][label]["p50"] > 0
        assert report["ratios"][f"p50_over_floor_{label}"] > 0
    assert [run["concurrency"] for run in report["throughput_1_worker"]] == [1, 4]
    assert all(run["ok"] == run["requests"] == 12 for run in report["throughput_1_worker"])
    for run in report["throughput_1_worker"]:  # where the CPU went: the work process does the fusion
        assert run["cpu_ms_work"] > run["cpu_ms_http"] > 0 and run["cpu_ms_client"] > 0
        assert 0 <= run["idle_pct"] <= 100
    saturation = report["saturation_1_worker"]
    assert saturation["ok"] + saturation["busy_503"] == saturation["requests"] == 72
    assert saturation["ok"] > 0 and saturation["other"] == 0
    assert 0 < report["memory_1_worker"]["rss_mb_after"] < 2000
    assert len(report["rss_mb_1_worker"]) == 1
    assert report["start_s_1_worker"] > 0
    assert report["targets"] and all(isinstance(ok, bool) for ok in report["targets"].values())


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def test_the_machine_probe_times_jobs_alone_and_on_every_core_at_once() -> None:
    from PIL import Image

    user, template = choose_photos(FACES)
    probe = ComputeProbe(make_input(Image.open(user).convert("RGB"), 0.25), template.read_bytes(), runs=2)
    try:
        probe.round()
    finally:
        probe.close()
    result = probe.result()
    assert len(probe.alone) == 2 and [len(t) for t in probe.together] == [2] * result.cores
    assert result.alone_ms_p50 > 0 and len(result.together_ms_p50) == result.cores
    assert 0 < result.speedup <= result.cores * 1.5  # each job timed, none skipped


def _run(
    rps: float = 20.0,
    concurrency: int = 4,
    busy_p99_ms: float = float("nan"),
    healthz_p99_ms: float = 5.0,
    healthz_max_ms: float = 6.0,
    cpu_ms_work: float = 30.0,
    steal_ms: float = 0.0,
) -> LoadRun:
    return LoadRun(
        concurrency=concurrency,
        requests=12,
        ok=12,
        busy_503=0,
        other=0,
        rps=rps,
        ok_p50_ms=40.0,
        ok_p99_ms=60.0,
        busy_p99_ms=busy_p99_ms,
        healthz_p99_ms=healthz_p99_ms,
        healthz_max_ms=healthz_max_ms,
        cpu_ms_http=2.0,
        cpu_ms_work=cpu_ms_work,
        cpu_ms_client=0.5,
        idle_pct=3.0,
        steal_ms=steal_ms,
    )


def test_a_throughput_cell_is_its_median_round_with_the_worst_healthz() -> None:
    runs = [
        _run(rps=rps, healthz_p99_ms=h, healthz_max_ms=h + 1, cpu_ms_work=rps / 10)
        for rps, h in ((31.0, 2.0), (24.0, 40.0), (28.0, 3.0))
    ]
    cell = median_round(runs)
    assert cell.rps == 28.0 and cell.cpu_ms_work == 2.8  # one real round, not a blend
    assert cell.rounds_rps == [31.0, 24.0, 28.0] and cell.rounds_busy_p99_ms is None
    assert cell.healthz_p99_ms == 40.0 and cell.healthz_max_ms == 41.0  # a slow /healthz is not hidden
    assert median_round(runs[:1]).rps == 31.0


def test_the_saturated_cell_is_its_round_of_median_busy_p99_with_the_host_steal_listed() -> None:
    runs = [
        _run(rps=rps, busy_p99_ms=busy, healthz_max_ms=worst, steal_ms=steal)
        for rps, busy, worst, steal in (
            (20.0, 134.6, 118.0, 130.0),
            (21.0, 14.0, 8.0, 0.0),
            (22.0, 25.0, 9.0, 10.0),
            (23.0, float("nan"), 7.0, 0.0),
        )
    ]
    cell = median_round(runs, by="busy_p99_ms")
    assert cell.busy_p99_ms == 25.0 and cell.rps == 22.0  # a round with no busy answer sorts last
    assert cell.rounds_busy_p99_ms is not None and cell.rounds_busy_p99_ms[:3] == [134.6, 14.0, 25.0]
    assert cell.rounds_steal_ms == [130.0, 0.0, 10.0, 0.0]
    assert cell.healthz_max_ms == 118.0  # the stall stays in sight


def test_the_scaling_ratio_pairs_rounds_run_back_to_back_with_more_clients_than_workers() -> None:
    def cells(*levels: tuple[int, list[float]]):
        return [median_round([_run(rps=rps, concurrency=c) for rps in rounds]) for c, rounds in levels]

    one = cells((1, [20.0, 20.0, 20.0]), (4, [20.0, 25.0, 22.0]), (16, [24.0]))
    two = cells(
        (1, [20.0, 20.0, 20.0]),  # one client: no scaling to see
        (4, [36.0, 45.0, 44.0]),
        (16, [48.0]),
    )
    assert paired_ratios(one, two) == [1.8, 1.8, 2.0, 2.0]


def test_without_the_documented_pair_the_photos_are_the_largest_accepted_with_one_face(tmp_path: Path) -> None:
    for name in (
        "deepface__img1.jpg",  # the largest, but over 2 MB: the service refuses it
        "face_recognition__examples_knn_examples_test_obama_and_biden.jpg",  # two faces
        "deepface__img59.jpg",
        "deepface__img9.jpg",
    ):
        (tmp_path / name).write_bytes(face(name).read_bytes())
    assert choose_photos(tmp_path) == (tmp_path / "deepface__img9.jpg", tmp_path / "deepface__img59.jpg")
    assert [p.name for p in choose_photos(FACES)] == [  # the pair docs/performance.md measured
        "deepface__img2.jpg",
        "face_recognition__examples_knn_examples_train_biden_biden2.jpg",
    ]
