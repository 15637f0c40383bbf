"""`facefuse bench --quick` runs end to end and writes every section (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import FACES


def test_bench_quick_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "facefuse.cli", "bench", "--quick", "--faces-dir", str(FACES),
                           "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold start to /readyz" in done.stdout and "ratio" in done.stdout
    report = json.loads(out.read_text())
    for label in ("0.25 MP", "1 MP"):
        assert report["floor_ms"][label]["p50"] > 0
        assert report["service_ms"][label]["p50"] > 0
        assert report["ratios"][f"p50_over_floor_{label}"] > 0
    assert report["service_url_out_ms"]["p50"] > 0
    assert all(run["ok"] == run["requests"] > 0 for run in report["throughput_1_worker"])
    assert 0 < report["memory_1_worker"]["rss_mb_after"] < 2000
    assert report["cold_start_s"] > 0
