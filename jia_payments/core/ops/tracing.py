"""OpenTelemetry traces: off unless configured, started once per serving process.

On when the standard variables say where to export (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp|console`), unless
`OTEL_SDK_DISABLED=true`. Off, nothing of the SDK is imported and no instrumentor is installed:
`span()` is a shared no-op and `set_attributes()` returns at once.

Each role starts it in the process that serves: gunicorn in each worker after the fork
(gunicorn.conf.py `post_fork`, never in the master), Celery in each pool process
(`worker_process_init`) and in beat (`beat_init`), and the commands that serve or consume.
The SDK reads the rest of the standard variables itself: `OTEL_SERVICE_NAME` (default
jia-payments), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`. The sampler is parent-based with
a trace-id ratio (`OTEL_TRACES_SAMPLER_ARG`, default 1.0) unless `OTEL_TRACES_SAMPLER` names another.

Spans carry no user-identifying value (user ids in URLs and queries are replaced, the client
address is dropped) unless `OTEL_RECORD_USER_ID=true`, which also records the API caller as
`enduser.id`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "jia-payments"
# Never traced: probes and scrapes, many a minute, each alone in its trace.
DEFAULT_EXCLUDED_URLS = "healthz,readyz,metrics"
# Query parameters and URL path segments that name an end user.
USER_KEYS = frozenset({"user_id", "customer_id"})
# Path segments that are credentials of a kind (the webhook URL's uuid comes from its secret).
SECRET_PATH_KEYS = frozenset({"uuid"})
USER_ADDRESS_ATTRIBUTES = ("http.client_ip", "client.address", "net.peer.ip", "net.sock.peer.addr")

_lock = threading.Lock()
_state: _Tracing | None = None
_NO_SPAN = contextlib.nullcontext()


def _env_true(name: str, environ: Mapping[str, str]) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (the standard OTEL_* variables)."""
    if _env_true("OTEL_SDK_DISABLED", environ):
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(endpoint or exporter)


def active() -> bool:
    """True in a process whose tracing has started (this pid)."""
    state = _state
    return state is not None and state.pid == os.getpid()


def record_user_id() -> bool:
    return _env_true("OTEL_RECORD_USER_ID", os.environ)


def start(role: str, *, exporter=None, environ: Mapping[str, str] = os.environ) -> bool:
    """Start tracing in this process for `role` (web, worker, beat, grpc, ...), once.

    Does nothing (and answers False) when not configured, unless `exporter` is given (tests pass
    the SDK's in-memory exporter). A forked child starts its own: the parent's exporter threads
    are not in it.
    """
    global _state
    if exporter is None and not configured(environ):
        return False
    with _lock:
        if active():
            return True
        _state = _Tracing(role, exporter=exporter, environ=environ)
    logger.info("tracing started", extra={"role": role, "exporter": _state.exporter_name})
    return True


def stop() -> None:
    """Flush, remove every instrumentation, forget the provider (tests; a process's shutdown)."""
    global _state
    with _lock:
        state, _state = _state, None
    if state is not None and state.pid == os.getpid():
        state.close()


def flush(timeout_millis: int = 5000) -> None:
    state = _state
    if state is not None and state.pid == os.getpid():
        state.provider.force_flush(timeout_millis)


def start_web_worker() -> bool:
    """gunicorn's post_fork: start in this worker, and rebuild the app's middleware chain so that
    it begins with the tracing middleware (a preloaded app built its chain in the master)."""
    if not configured():
        return False
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")
    from jia_payments.wsgi import application

    start("web")
    application.load_middleware()
    return True


def span(name: str, attributes: dict | None = None, *, kind=None, links=None, context=None):
    """A span of ours around a block (a no-op context when tracing is off). `context`: the parent
    (e.g. `context_from(carrier)`) instead of the current span."""
    if not active():
        return _NO_SPAN
    from opentelemetry.trace import SpanKind

    return _state.tracer.start_as_current_span(
        name, context=context, kind=kind or SpanKind.INTERNAL, attributes=attributes, links=links
    )


def set_attributes(attributes: dict) -> None:
    """Business attributes on the current span (the request's, the task's): ids, statuses,
    outcomes. Never a secret, card data or a user id (see `set_user`)."""
    if not active():
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({key: value for key, value in attributes.items() if value is not None})


def set_user(user_id: str | None) -> None:
    """The API caller as `enduser.id`, only with OTEL_RECORD_USER_ID=true."""
    if user_id and active() and record_user_id():
        set_attributes({"enduser.id": user_id})


def current_carrier() -> dict[str, str] | None:
    """The current span's W3C trace context ({"traceparent", "tracestate"?}), or None."""
    if not active():
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier or None


def context_from(carrier: Mapping[str, str] | None):
    """The OpenTelemetry context a W3C carrier (traceparent/tracestate) names (None: none)."""
    if not carrier:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(dict(carrier))


def link_to(carrier: Mapping[str, str] | None):
    """A span link to the span a carrier names, or None when it names none."""
    context = context_from(carrier)
    if context is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span(context).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


def log_fields(logger_, method_name, event_dict):
    """structlog processor: `trace_id` and `span_id` of the active span, so a line leads to its trace."""
    if not active():
        return event_dict
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


# --- What the instrumentations record -------------------------------------------------------


def _without_users(path: str, kwargs: Mapping[str, object]) -> str:
    if record_user_id():
        hidden = SECRET_PATH_KEYS
    else:
        hidden = USER_KEYS | SECRET_PATH_KEYS
    for key, value in kwargs.items():
        if key in hidden and value:
            path = path.replace(str(value), "{" + key + "}")
    return path


def _query_without_users(query: str) -> str:
    from urllib.parse import parse_qsl, urlencode

    if not query or record_user_id():
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode(
        [(key, "{" + key + "}" if key in USER_KEYS else value) for key, value in pairs], safe="{}"
    )


def _django_request_hook(span, request) -> None:
    """Rewrite the URL attributes Django's instrumentation took from the raw request: user ids
    (path and query) and the webhook's secret path segment become placeholders."""
    if not span.is_recording():
        return
    from urllib.parse import urlsplit, urlunsplit

    from django.urls import Resolver404, resolve

    try:
        kwargs = resolve(request.path_info).kwargs
    except Resolver404:
        kwargs = {}
    path = _without_users(request.path, kwargs)
    query = _query_without_users(request.META.get("QUERY_STRING", ""))
    target = f"{path}?{query}" if query else path
    attributes = span.attributes or {}
    rewrites = {"http.target": target, "url.path": path, "url.query": query}
    for key in ("http.url", "url.full"):
        if key in attributes:
            rewrites[key] = urlunsplit(urlsplit(attributes[key])._replace(path=path, query=query))
    for key, value in rewrites.items():
        if key in attributes:
            span.set_attribute(key, value)
    if not record_user_id():
        for key in USER_ADDRESS_ATTRIBUTES:
            if key in attributes:
                span.set_attribute(key, "")


def _requests_hook(span, request) -> None:
    """Outgoing HTTP (Stripe): the URL without its query (searches can name a customer)."""
    if not span.is_recording():
        return
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(request.url)
    if parts.query:
        bare = urlunsplit(parts._replace(query=""))
        attributes = span.attributes or {}
        for key in ("http.url", "url.full"):
            if key in attributes:
                span.set_attribute(key, bare)


class _Tracing:
    """The SDK's provider, its exporter, and the instrumentors it installed in this process."""

    def __init__(self, role: str, *, exporter, environ: Mapping[str, str]) -> None:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.pid = os.getpid()
        self.role = role
        resource = Resource.create(
            {
                SERVICE_NAME: environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
                "service.instance.id": f"{os.uname().nodename}-{self.pid}",
                "jia.role": role,
            }
        )
        self.provider = TracerProvider(resource=resource, sampler=_sampler(environ))
        if exporter is not None:  # given by a test: spans exported as they end
            self.exporter_name = type(exporter).__name__
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            exporter = _exporter(environ)
            self.exporter_name = type(exporter).__name__
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("jia_payments")
        self.instrumentors = _instrument(self.provider, environ)

    def close(self) -> None:
        for instrumentor in reversed(self.instrumentors):
            try:
                instrumentor.uninstrument()
            except Exception:  # one that will not let go must not keep the rest installed
                logger.exception("could not remove %s", type(instrumentor).__name__)
        self.provider.shutdown()


def _sampler(environ: Mapping[str, str]):
    from opentelemetry.sdk.trace import sampling

    if environ.get("OTEL_TRACES_SAMPLER"):
        return sampling._get_from_env_or_default()
    ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
    return sampling.ParentBased(sampling.TraceIdRatioBased(ratio))


def _exporter(environ: Mapping[str, str]):
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol in ("", "http/protobuf"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf, not {protocol!r}")
    return OTLPSpanExporter()


def _instrument(provider, environ: Mapping[str, str]) -> list:
    """Django, psycopg, Redis, requests, Celery and a gRPC server: the maintained instrumentations."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorServer
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    excluded = environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    installed = []
    for instrumentor, options in (
        (DjangoInstrumentor(), {"request_hook": _django_request_hook, "excluded_urls": excluded}),
        (PsycopgInstrumentor(), {}),
        (RedisInstrumentor(), {}),
        (RequestsInstrumentor(), {"request_hook": _requests_hook}),
        (CeleryInstrumentor(), {}),
        (GrpcInstrumentorServer(), {}),
    ):
        if instrumentor.is_instrumented_by_opentelemetry:
            continue
        instrumentor.instrument(tracer_provider=provider, **options)
        installed.append(instrumentor)
    return installed
