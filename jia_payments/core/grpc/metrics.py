"""Prometheus metrics of the gRPC server, by service, method and status code (the names and labels
of py-grpc-prometheus, so its dashboards work). Served by `grpcserver` on GRPC_METRICS_PORT and,
in multiprocess mode, summed into the scrape of the process's metrics directory like the rest."""

from prometheus_client import Counter, Histogram

HANDLED = Counter(
    "grpc_server_handled",
    "gRPC calls completed on the server, by service, method and status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time the server took to answer a gRPC call, by service and method.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe(*, service: str, method: str, code: str, seconds: float, grpc_type: str = "unary") -> None:
    """A call that ended; `grpc_type`: unary, client_stream, server_stream or bidi_stream, as
    go-grpc-prometheus names them (a stream's time is from its start to its end)."""
    HANDLED.labels(grpc_type, service, method, code).inc()
    HANDLING_SECONDS.labels(grpc_type, service, method).observe(seconds)
