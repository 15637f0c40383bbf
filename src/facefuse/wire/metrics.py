"""Prometheus metrics of the HTTP process (it answers every request; the work processes only compute)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter("facefuse_requests_total", "HTTP requests answered", ["route", "method", "status", "error_code"])
LATENCY = Histogram(
    "facefuse_request_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
QUEUE = Gauge("facefuse_work_admitted", "Jobs running or waiting in the work pool")


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
