"""Prometheus metrics: request counts and latency by route template and status.

Labels hold route templates (``/api/v1/cases/{case_id}``), never raw paths, so ids
and values cannot reach the metrics store and cardinality stays bounded. With several
uvicorn workers, ``samverkan serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` and the
``/metrics`` endpoint aggregates every worker's samples.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "samverkan_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "samverkan_http_request_duration_seconds",
    "HTTP request latency by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

AUDIT_GROUP_RECORDS = Histogram(
    "samverkan_audit_group_commit_records",
    "Audit records of reads appended and committed together by one group commit.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
AUDIT_GROUP_FAILED_READS = Counter(
    "samverkan_audit_group_commit_failed_reads_total",
    "Reads answered 503 because the group commit of their audit records failed.",
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method, route, str(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)


def render_latest() -> tuple[bytes, str]:
    """The exposition text, aggregated across workers when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
