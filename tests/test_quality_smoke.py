"""A small run of the quality benchmark (benchmarks/quality.py) through the real code path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import FACES, REPO


def test_quality_benchmark_small_run(tmp_path: Path) -> None:
    out, sheet = tmp_path / "quality.json", tmp_path / "quality.png"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--pairs", "8",
                           "--faces-dir", str(FACES), "--out", str(out), "--sheet", str(sheet)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "id_transfer" in done.stdout and "targets met" in done.stdout
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["pairs"] == 8 and len(report["pairs"]) == 10  # 8 colour + 2 grayscale templates
    assert summary["success"] == 1.0
    # Loose floors for 8 pairs: a broken fusion (user pasted, template returned, colours
    # off, background touched) lands far outside them.
    assert summary["id_transfer"] >= 0.6
    assert summary["psnr_bg"] >= 45
    assert summary["pose"] <= 0.08
    assert summary["tone_median"] <= 4
    assert summary["gray_kept"] == 1.0
    assert sheet.stat().st_size > 10_000
