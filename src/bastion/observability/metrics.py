"""Prometheus metrics, correct when uvicorn runs several worker processes.

``bastion serve --workers N`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start; prometheus-client then keeps each worker's values in files
there and ``/metrics`` sums them. With one process, values live in memory. Metrics are
created per app (not at import) with no global registry, so tests can build many apps.
Labels are low-cardinality: never a key, user or request id.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode values go to files; registering them would double-count.
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        self.http_requests = Counter(
            "bastion_http_requests",
            "HTTP requests served, by route template, method and status class.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "bastion_http_request_duration_seconds",
            "Time to serve an HTTP request.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.policy_reloads = Counter(
            "bastion_policy_reloads",
            "Policy reload attempts by outcome (success, unchanged, error).",
            ["outcome"],
            registry=registry,
        )
        self.policy_loaded_timestamp = Gauge(
            "bastion_policy_loaded_timestamp_seconds",
            "When the policy in force was loaded (Unix time).",
            registry=registry,
            multiprocess_mode="max",
        )
        self.auth_failures = Counter(
            "bastion_auth_failures",
            "Requests refused by authentication or authorisation, by error code.",
            ["code"],
            registry=registry,
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                registry, path=str(self.multiprocess_dir)
            )
            return generate_latest(registry)
        assert self._registry is not None
        return generate_latest(self._registry)
