"""Prometheus metrics: the registry and `GET /metrics`.

django-prometheus' series measure requests (rate, latency by view and status; recorded by
`RequestMetricsRecorder` from the request log middleware), database queries and cache gets; this
module adds Celery task failures and the outbox gauges, and serves every metric of the
process in one scrape, the business metrics the apps define (`payments.metrics`,
`entitlements.metrics`) included.

Several processes (gunicorn workers, Celery's prefork children) each count in their own files
under PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up by gunicorn.conf.py
and docker/entrypoint.sh); a scrape of any worker sums them all. Without that variable (tests,
`make run`) the process's own registry is served.

Who may read /metrics: with METRICS_TOKEN set, callers sending `Authorization: Bearer <token>`
(Prometheus' `authorization: {credentials_file: ...}`); unset, nobody in production (404: business
numbers are not left open to the internet by accident) and anyone on a DEBUG server. The endpoint is
answered before host validation and the HTTPS redirect, like the probes, since a scraper calls the
pod's own address over plain HTTP.

Labels are bounded sets only (statuses, ISO currency codes, known codes with "other" for the rest,
Celery task names), never a user, payment or event id: the apps' metrics follow the same rule.
"""

import hmac
import logging
import os
import time
from bisect import bisect_left
from timeit import default_timer

from django.conf import settings
from django.http import HttpResponse
from django_prometheus.conf import NAMESPACE, PROMETHEUS_LATENCY_BUCKETS
from django_prometheus.middleware import Metrics
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from jia_payments.core.api.errors import problem, problem_response

logger = logging.getLogger(__name__)

# No `*_created` sample per series: Prometheus does not need them and they double the scrape.
disable_created_metrics()

PREFIX = "jia_payments"

# --- Celery --------------------------------------------------------------------------------------

CELERY_TASK_FAILURES = Counter(
    f"{PREFIX}_celery_task_failures",
    "Celery task runs that ended in an exception (retries are counted apart), by task.",
    ["task"],
)
CELERY_TASK_RETRIES = Counter(f"{PREFIX}_celery_task_retries", "Celery task retries, by task.", ["task"])


def _task_name(sender) -> str:
    return getattr(sender, "name", None) or "unknown"


def _on_task_failure(sender=None, **kwargs):
    CELERY_TASK_FAILURES.labels(task=_task_name(sender)).inc()


def _on_task_retry(sender=None, **kwargs):
    CELERY_TASK_RETRIES.labels(task=_task_name(sender)).inc()


def connect_celery_signals() -> None:
    from celery.signals import task_failure, task_retry

    task_failure.connect(_on_task_failure, weak=False, dispatch_uid="core.metrics.task_failure")
    task_retry.connect(_on_task_retry, weak=False, dispatch_uid="core.metrics.task_retry")


# --- Outbox: read from the database at scrape time -----------------------------------------------


OUTBOX_COUNT_CAP = 1_000_000


class OutboxCollector:
    """Pending and dead outbox rows and the oldest pending one's age, read at scrape time:
    index-only probes of the partial indexes of pending and dead rows (counts stop at
    OUTBOX_COUNT_CAP). With the database down these gauges are left out of the scrape (and
    /readyz says why)."""

    def collect(self):
        from django.db import DatabaseError

        from jia_payments.core.models import OutboxEvent

        pending = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING)
        try:
            count = pending.order_by()[:OUTBOX_COUNT_CAP].count()
            oldest = pending.order_by("id").values_list("created_at", flat=True).first()
            dead = (
                OutboxEvent.objects.filter(status=OutboxEvent.Status.DEAD)
                .order_by()[:OUTBOX_COUNT_CAP]
                .count()
            )
        except DatabaseError as error:
            logger.warning("metrics: outbox gauges left out (%s)", error.__class__.__name__)
            return
        age = max(0.0, time.time() - oldest.timestamp()) if oldest else 0.0
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_pending_events", "Domain events not yet published to Kafka.", value=count
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest event not yet published (0 when none is pending).",
            value=age,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_dead_events",
            "Domain events the broker refused EVENTS_MAX_ATTEMPTS times (admin: publish again).",
            value=dead,
        )


class _ProcessRegistry:
    """This process's own metrics (no multiprocess directory), as one collector."""

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(reg)
    else:
        reg.register(_ProcessRegistry())
    reg.register(OutboxCollector())
    return reg


# --- Requests: django-prometheus' request series, plus latency by view and status ------------------


class RequestMetrics(Metrics):
    """django-prometheus' request metrics and a latency histogram by view and status code."""

    _instance = None

    def register(self):
        super().register()
        self.requests_latency_by_view_status = self.register_metric(
            Histogram,
            "django_http_requests_latency_seconds_by_view_status",
            "Histogram of request processing time by view name and response status code.",
            ["view", "status"],
            buckets=PROMETHEUS_LATENCY_BUCKETS,
            namespace=NAMESPACE,
        )


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"))


def _method(request) -> str:
    """A known HTTP method, or "<invalid method>": made-up methods would each add series."""
    method = request.method
    return method if method in _METHODS else "<invalid method>"


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or "<unnamed view>"


class _Counted:
    """A counter child's value, counted without Counter.inc's checks (made when it was looked up)."""

    __slots__ = ("_value",)

    def __init__(self, counter):
        self._value = counter._value

    def inc(self, amount: float = 1) -> None:
        self._value.inc(amount)


class _Observed:
    """A histogram child's values, observed as Histogram.observe does without its checks and its
    loop over the buckets; a zero adds nothing to the sum, so it is not written."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, histogram):
        self._sum, self._buckets, self._bounds = histogram._sum, histogram._buckets, histogram._upper_bounds

    def observe(self, amount: float) -> None:
        if amount:
            self._sum.inc(amount)
        self._buckets[bisect_left(self._bounds, amount)].inc(1)  # the first bucket with amount <= bound


def _recorded(child):
    return _Observed(child) if isinstance(child, Histogram) else _Counted(child)


class _Children(dict):
    """A labelled metric's children by label values, looked up once per label set (not per
    request: `labels()` validates and locks on every call)."""

    def __init__(self, metric):
        super().__init__()
        self.metric = metric

    def __missing__(self, values):
        child = self[values] = _recorded(self.metric.labels(*values))
        return child


def _transport(request) -> str:
    return "https" if request.is_secure() else "http"


class RequestMetricsRecorder:
    """django-prometheus' Before and After middlewares' series (the same names, labels and counts)
    and a latency histogram by view and status, recorded by the request log middleware around the
    whole stack with its one clock: `started` before the rest of the stack, `finished` with the
    answer and the seconds it took, and the hooks Django calls around the view.

    Labelled children are looked up once per label set. Every method label is bounded
    (django-prometheus labels its latency-by-view-and-method with the raw one)."""

    def __init__(self):
        m = RequestMetrics.get_instance()
        self._requests = _recorded(m.requests_total)
        self._responses = _recorded(m.responses_total)
        self._ajax = _recorded(m.requests_ajax)
        self._streaming = _recorded(m.responses_streaming)
        self._request_bytes = _recorded(m.requests_body_bytes)
        self._response_bytes = _recorded(m.responses_body_bytes)
        self._latency = _recorded(m.requests_latency_before)
        self._by_method = _Children(m.requests_by_method)
        self._by_transport = _Children(m.requests_by_transport)
        self._by_view_transport_method = _Children(m.requests_by_view_transport_method)
        self._by_templatename = _Children(m.responses_by_templatename)
        self._by_status = _Children(m.responses_by_status)
        self._by_status_view_method = _Children(m.responses_by_status_view_method)
        self._by_charset = _Children(m.responses_by_charset)
        self._latency_by_view_method = _Children(m.requests_latency_by_view_method)
        self._latency_by_view_status = _Children(m.requests_latency_by_view_status)
        self._exceptions_by_type = _Children(m.exceptions_by_type)
        self._exceptions_by_view = _Children(m.exceptions_by_view)

    def started(self, request, started: float) -> None:
        self._requests.inc()
        self._by_method[(_method(request),)].inc()
        self._by_transport[(_transport(request),)].inc()
        if request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self._ajax.inc()
        self._request_bytes.observe(int(request.META.get("CONTENT_LENGTH") or 0))
        request.prometheus_after_middleware_event = started

    def finished(self, request, response, elapsed: float) -> None:
        self._responses.inc()
        self._latency.observe(elapsed)
        view, method, status = _view_name(request), _method(request), str(response.status_code)
        self._by_status[(status,)].inc()
        self._by_status_view_method[(status, view, method)].inc()
        self._by_charset[(str(response.charset),)].inc()
        if response.streaming:
            self._streaming.inc()
        else:
            self._response_bytes.observe(len(response.content))
        self._latency_by_view_method[(view, method)].observe(elapsed)
        self._latency_by_view_status[(view, status)].observe(elapsed)

    def process_view(self, request, view_func, view_args, view_kwargs):
        self._by_view_transport_method[(_view_name(request), _transport(request), _method(request))].inc()

    def process_template_response(self, request, response):
        if hasattr(response, "template_name"):
            self._by_templatename[(str(response.template_name),)].inc()
        return response

    def process_exception(self, request, exception):
        # A view's exception, as django-prometheus counts it (its 500 answer is counted in
        # `finished` too).
        view = _view_name(request)
        self._exceptions_by_type[(type(exception).__name__,)].inc()
        if getattr(request, "resolver_match", None) is not None:
            self._exceptions_by_view[(view,)].inc()
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            self._latency_by_view_method[(view, _method(request))].observe(default_timer() - started)


# --- The endpoint ---------------------------------------------------------------------------------


def _allowed_header(authorization: str) -> bool | None:
    """True: serve; False: 401 (a token is required); None: 404 (metrics are not served)."""
    token = settings.METRICS_TOKEN
    if not token:
        return True if settings.DEBUG else None
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _allowed(request) -> bool | None:
    return _allowed_header(request.headers.get("Authorization", ""))


def _refusal(allowed: bool | None) -> tuple[dict, dict]:
    """The problem and its headers for a scrape not served: `allowed` None (404) or False (401)."""
    if allowed is None:
        return problem(404, "not_found", "Not found", "Not found."), {}
    return (
        problem(401, "not_authenticated", "Authentication required", "A metrics bearer token is required."),
        {"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def metrics_view(request):
    allowed = _allowed(request)
    if not allowed:
        return problem_response(*_refusal(allowed))
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# --- The Celery worker's own endpoint ------------------------------------------------------------


def serve_worker_metrics(port: int, addr: str = "0.0.0.0"):  # noqa: S104 (a container's port)
    """The worker's metrics (its pool processes' counts in PROMETHEUS_MULTIPROC_DIR) on `port`, any
    path, under the same rule as /metrics (METRICS_TOKEN). Runs in a daemon thread of the worker's
    main process; answers the server (tests shut it down)."""
    import threading
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, make_wsgi_app

    reg = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(reg)
    else:
        reg.register(_ProcessRegistry())
    metrics_app = make_wsgi_app(reg)

    def app(environ, start_response):
        allowed = _allowed_header(environ.get("HTTP_AUTHORIZATION", ""))
        if not allowed:
            refused = problem_response(*_refusal(allowed))
            start_response(f"{refused.status_code} {refused.reason_phrase}", list(refused.items()))
            return [refused.content]
        return metrics_app(environ, start_response)

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    logger.info("worker metrics served on %s:%s", addr, server.server_port)
    return server
