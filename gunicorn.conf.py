"""gunicorn's configuration for production serving: `gunicorn -c gunicorn.conf.py jia_payments.wsgi`.

Every value can be changed through the environment without editing this file:

  PORT (8000) / GUNICORN_BIND      where to listen (GUNICORN_BIND wins: "host:port[,host:port]")
  WEB_CONCURRENCY                  worker processes (default: 2 x CPUs available + 1)
  GUNICORN_THREADS (1)             threads per worker (>1 switches to the gthread worker)
  GUNICORN_TIMEOUT (30)            seconds a request may take before its worker is killed
  GUNICORN_GRACEFUL_TIMEOUT (30)   seconds workers get to finish their requests on SIGTERM/restart
  GUNICORN_KEEPALIVE (5)           seconds to hold an idle keep-alive connection (behind a proxy)
  GUNICORN_MAX_REQUESTS (20000)    recycle a worker after this many requests (+ up to 10% jitter);
                                   0 = never
  GUNICORN_PRELOAD (true)          load the app once in the master; workers are forks of it
  GUNICORN_ACCESS_LOG (false)      true: also gunicorn's JSON access line per request on stdout
                                   (the app's own `request_finished` line carries the same and the
                                   caller: one line per request is the default)
  FORWARDED_ALLOW_IPS              proxies trusted for X-Forwarded-* (gunicorn reads it itself)
  LOG_LEVEL (INFO), LOG_FORMAT (json)   as for the app (jia_payments/core/ops/logs.py)
  OTEL_EXPORTER_OTLP_ENDPOINT      traces to this OTLP collector, started in each worker (post_fork);
                                   unset: no tracing (README "Operations")
  PROMETHEUS_MULTIPROC_DIR         where workers write their metrics (default: a fresh temporary
                                   directory); emptied at start, dead workers' gauges dropped.

Logs: gunicorn's own lines and the access lines are JSON objects in the same shape as the app's.
"""

import gc
import os
import tempfile
import threading
import time

from gunicorn import glogging
from gunicorn import util as gunicorn_util


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


wsgi_app = "jia_payments.wsgi:application"
bind = [b.strip() for b in os.environ.get("GUNICORN_BIND", "").split(",") if b.strip()] or [
    f"0.0.0.0:{_int('PORT', 8000)}"
]
workers = _int("WEB_CONCURRENCY", 2 * _cpus() + 1)
threads = _int("GUNICORN_THREADS", 1)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycling guards against a leak, and a worker's RSS grew 2.4 MB over 100,000 checks (bench/RESULTS.md,
# memory). A new worker starts cold: it verifies again each token it is sent, and leaves its metric
# files behind (the counters must stay counted). Recycled every 2,000 requests (5 workers), the warm
# check cost 4-7% more CPU, served 18-24% fewer requests/s and its p99 rose 1.2-2.7x.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = max_requests // 10
# Workers are forked from a master that has already loaded the app, so a new worker (at start, or
# recycled after max_requests) costs a fork instead of importing Django and the app again (~1.7 s
# of CPU measured: a fifth of a worker's CPU over 2,000 requests). Nothing opens a database, cache
# or broker connection at import (tested), so no connection is shared across the fork. New code
# needs a restart of the server, not a HUP.
preload_app = _bool("GUNICORN_PRELOAD", True)
# Heartbeat files in memory: a container's overlay filesystem can stall workers into timeouts.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (mkstemp files)
# gunicornc's control socket: not used here, and its default path is shared by every instance.
control_socket_disable = True
# Request line and header limits (gunicorn's defaults); bodies are bounded by Django
# (DATA_UPLOAD_MAX_MEMORY_SIZE). gunicorn refuses a request over them before the app sees it
# (414 for the request line, 431 for a header line or too many headers), in problem details like
# every other error (write_problem below).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

loglevel = os.environ.get("LOG_LEVEL", "info").lower()
errorlog = "-"
accesslog = "-" if _bool("GUNICORN_ACCESS_LOG", False) else None


class JsonLogger(glogging.Logger):
    """gunicorn's logger with the app's formatter (JSON lines), and structured access lines."""

    def setup(self, cfg):
        super().setup(cfg)
        from jia_payments.core.ops.logs import use_structured_format

        log_format = os.environ.get("LOG_FORMAT", "json").lower()
        use_structured_format(self.error_log, log_format)
        use_structured_format(self.access_log, log_format)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers or []
        request_id = next((v for k, v in headers if k.lower() == "x-request-id"), None)
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        self.access_log.info(
            "access",
            extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": int(status) if str(status).isdigit() else status,
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "bytes": getattr(resp, "sent", None),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "request_id": request_id,
                "user_agent": environ.get("HTTP_USER_AGENT"),
            },
        )


logger_class = JsonLogger


def pre_fork(server, worker):
    """What the preloaded master holds (~170,000 objects: Django, the apps, their modules) moves to
    the garbage collector's permanent generation before a worker is forked from it: a worker's full
    collection then walks only its own objects (~110 ms for the inherited ones, measured on a
    loaded machine), and no collection writes to the inherited objects' pages, which stay shared
    with the master instead of being copied into each worker. Garbage left from loading is
    collected first, so none of it is kept; after the first fork there is little left to do."""
    gc.collect()
    gc.freeze()


def post_fork(server, worker):
    """OpenTelemetry (when OTEL_* configure it, jia_payments/core/ops/tracing.py) starts in each
    worker, never in the master: the SDK's export thread and connections would not survive a fork."""
    from jia_payments.core.ops.tracing import start_web_worker

    start_web_worker()


# --- Prometheus multiprocess mode (jia_payments/core/ops/metrics.py) ---------------------------------


# Set before the app is loaded (preload_app): prometheus_client picks multiprocess mode at import.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jia-payments-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Before any worker: the metrics directory emptied of a previous run's files (their counts
    would otherwise be added to ours; only prometheus_client's *.db files are removed, the
    directory may be shared with other things). The preloaded master's own files go too: it
    serves no request, and each worker writes files of its own pid."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(path):
        target = os.path.join(path, name)
        if name.endswith(".db") and os.path.isfile(target):
            os.unlink(target)
    server.log.info("prometheus multiprocess directory %s", path)


def child_exit(server, worker):
    """A worker is gone: drop its live gauges (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# --- gunicorn's own refusals in the API's error shape ---------------------------------------------
# A request gunicorn cannot or will not parse (request line or header over the limits above, a
# malformed request line) is answered by gunicorn itself, with an HTML page: here it is problem
# details, as the app would answer (gunicorn's workers all call gunicorn.util.write_error).

_PROBLEM_DETAILS = {
    414: f"The request line (method, path and query) is longer than {limit_request_line} bytes.",
    431: f"A header line is longer than {limit_request_field_size} bytes, or there are more than "
    f"{limit_request_fields} headers.",
}


def write_problem(sock, status_int, reason, mesg):
    import json

    from gunicorn.util import write_nonblock

    from jia_payments.core.api.errors import PROBLEM_CONTENT_TYPE, code_for, problem, title_for

    title = title_for(status_int)
    detail = _PROBLEM_DETAILS.get(status_int) or (mesg[:200] if mesg else f"{title}.")
    body = json.dumps(problem(status_int, code_for(status_int), title, detail)).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    write_nonblock(sock, head.encode("latin-1") + body)


gunicorn_util.write_error = write_problem


# --- A request whose body the app did not read: the connection closes, and says so ---------------
# An answer given without reading the body (413 over DATA_UPLOAD_MAX_MEMORY_SIZE, 401 before the
# body is parsed) left the rest of that body on a keep-alive connection; gunicorn drains only a
# bounded amount and then dropped the connection after saying "keep-alive", losing the client's
# next request on it. Such answers now say "Connection: close" and close, after reading and
# dropping what is left of the body (within a bound): closing a socket with unread data makes the
# kernel reset the connection, and a client still sending its body then gets a broken pipe instead
# of the answer already sent to it.
UNREAD_BODY_DRAIN_BYTES = 8 * 1024 * 1024
UNREAD_BODY_DRAIN_SECONDS = 2.0

_serving = threading.local()


def pre_request(worker, req):
    _serving.request = req


def post_worker_init(worker):
    app = worker.wsgi

    def closing_when_the_body_is_unread(environ, start_response):
        result = app(environ, start_response)
        unread = getattr(getattr(environ.get("wsgi.input"), "reader", None), "length", 0)
        request = getattr(_serving, "request", None)
        if unread and request is not None:
            request.must_close = True  # gunicorn then answers "Connection: close" and closes
        return result

    worker.wsgi = closing_when_the_body_is_unread


def post_request(worker, req, environ, resp):
    body = environ.get("wsgi.input")
    if not getattr(req, "must_close", False) or body is None or resp is None:
        return
    deadline = time.monotonic() + UNREAD_BODY_DRAIN_SECONDS
    drained = 0
    try:
        while drained < UNREAD_BODY_DRAIN_BYTES and (remaining := deadline - time.monotonic()) > 0:
            resp.sock.settimeout(remaining)
            chunk = body.read(65536)
            if not chunk:
                break
            drained += len(chunk)
    except (OSError, ValueError):
        pass  # the client went away or sent less than it announced: the close follows either way
