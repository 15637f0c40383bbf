"""Prometheus metrics; with several workers they are summed over all (multiprocess mode)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

REQUESTS = Counter(
    "facefuse_requests_total", "HTTP requests answered", ["route", "method", "status", "error_code"]
)
LATENCY = Histogram(
    "facefuse_request_seconds", "Time to answer an HTTP request", ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
QUEUE = Gauge("facefuse_work_admitted", "Jobs running or waiting in the work pool", multiprocess_mode="livesum")


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
