"""The performance benchmark of docs/performance.md, as a script.

    .venv/bin/python benchmarks/perf.py --faces-dir ../shared/faces [--out bench.json] [--quick]

Same as `facefuse bench` (`make bench`): the floor (base64 + JPEG decode + detection and
landmarks + JPEG encode) and the real service on 127.0.0.1 measured in one run; prints the
table with each target of the issue marked MET or MISS and writes the report as JSON.
"""

from __future__ import annotations

import sys

from facefuse.cli import bench

if __name__ == "__main__":
    sys.exit(bench.main(args=sys.argv[1:], prog_name="benchmarks/perf.py"))
