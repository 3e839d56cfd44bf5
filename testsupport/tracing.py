"""Traces in tests: the SDK's in-memory exporter in this process, and an OTLP receiver for the
spans other processes (a Celery worker, a gRPC server) export over the real protocol.

    with traced() as spans:              # tracing on in this process, every instrumentation in
        ...
        spans.get_finished_spans()

    with OtlpReceiver() as receiver:     # http/protobuf on 127.0.0.1:<port>, /v1/traces
        env = receiver.environ()         # OTEL_* for a child process exporting to it
        receiver.spans()                 # [ReceivedSpan] so far

    with OtlpGrpcReceiver() as receiver: # the same over gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc)
"""

from __future__ import annotations

import gzip
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def traced():
    """Tracing on in this process with an in-memory exporter (spans exported as they end);
    every instrumentation removed again afterwards. Database connections are reopened on both
    sides, so that those of the test go through the instrumented driver and later tests' do not."""
    from django.db import connections
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from jia_payments.core.ops import tracing

    assert not tracing.active(), "tracing is already on in this process"
    exporter = InMemorySpanExporter()
    connections.close_all()
    tracing.start("test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.stop()
        connections.close_all()


def _texts(attributes) -> list[str]:
    texts = []
    for value in (attributes or {}).values():
        if isinstance(value, tuple | list):
            texts.extend(str(item) for item in value)
        else:
            texts.append(str(value))
    return texts


def all_attribute_values(spans) -> list[str]:
    """Every span's name and attribute values, its events' and its resource's, as text."""
    values = []
    for span in spans:
        values.append(span.name)
        values.extend(_texts(span.attributes))
        values.extend(_texts(span.resource.attributes))
        for event in span.events:
            values.append(event.name)
            values.extend(_texts(event.attributes))
    return values


@dataclass
class ReceivedSpan:
    """One span as a collector receives it (ids as hex text, attributes as Python values)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict
    resource: dict
    links: list[tuple[str, str]] = field(default_factory=list)


def _any_value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode_export_request(body: bytes) -> list[ReceivedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes={kv.key: _any_value(kv.value) for kv in span.attributes},
                        resource=resource,
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    )
                )
    return spans


class OtlpReceiver:
    """A minimal OTLP/HTTP (protobuf) trace receiver on 127.0.0.1, keeping what it is sent."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    spans = decode_export_request(body)
                    with receiver._lock:
                        receiver._spans.extend(spans)
                        receiver.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self, service_name: str = "jia-payments") -> dict[str, str]:
        """OTEL_* for a process that exports here, quickly (small batches, 100 ms delay)."""
        return {
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class OtlpGrpcReceiver:
    """The OTLP trace service over gRPC on 127.0.0.1, keeping what it is sent."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                spans = decode_export_request(request.SerializeToString())
                with receiver._lock:
                    receiver._spans.extend(spans)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def environ(self, service_name: str = "jia-payments") -> dict[str, str]:
        return {
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpGrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(0)
