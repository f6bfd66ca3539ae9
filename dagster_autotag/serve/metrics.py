"""Prometheus metrics of the service (prometheus_client: the reference client, text exposition format and
histogram buckets done right). One registry per app, so two services in one process (tests) do not clash."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "autotag_serve_requests", "HTTP requests by path and status code", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "autotag_serve_request_seconds", "HTTP request latency by path", ["path"], buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.items = Counter("autotag_serve_items", "Items labelled, by scheme", ["scheme"], registry=r)
        self.batch_items = Histogram(
            "autotag_serve_batch_items", "Items per model batch (micro-batching)", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "autotag_serve_batch_requests", "Requests per model batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.model_version = Gauge(
            "autotag_serve_model_version", "Registered version serving each scheme (the value)",
            ["scheme", "name", "kind"], registry=r,
        )  # fmt: skip
        self.swaps = Counter(
            "autotag_serve_model_swaps", "Model swaps after the registry moved", ["scheme"], registry=r
        )
        self.reload_errors = Counter(
            "autotag_serve_reload_errors", "Failed registry resolutions or loads", ["scheme"], registry=r
        )

    def serving(self, scheme: str, name: str, kind: str, version: str, previous: tuple[str, str] | None) -> None:
        if previous is not None and previous != (name, kind):
            self.model_version.remove(scheme, *previous)
        self.model_version.labels(scheme, name, kind).set(float(version))
