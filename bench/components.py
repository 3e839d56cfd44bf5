"""What each change to the request stack saves: the part it changed, before and after, in one process.

`python -m bench components [--write]` (asked for by name; a minute). Each line times the code a
change replaced and the code that replaced it, alternately, in the same process (`process_time`,
median of rounds), per request: a whole-request figure on this shared machine moves more with the
load than these differences. The api suite measures the whole requests.

- logs: django-structlog's request_started and request_finished lines and gunicorn's access line,
  rendered by the stdlib JSON encoder with caller, thread and process lookups; against the one
  request_finished line, orjson, no lookups;
- database health check: Django's `SELECT 1` before a persistent connection's first use in a
  request (the server's side of it not counted) against the socket poll;
- rate limit + cache read: the throttle's count and the entitlement cache's read as two round
  trips (each its own Lua script, as production runs them), against the one script carrying both;
- webhook endpoint read: the second read of the endpoint row dj-stripe's view made.
"""

import json
import logging
import os
import statistics
import subprocess
import tempfile
import time
import uuid

from bench import api, server
from bench.server import log

ROUNDS = 7


def run(args) -> str:
    from testsupport.tokens import TokenIssuer

    database_url, redis_url = server.bench_database_url(), server.bench_redis_url()
    metrics_dir = tempfile.mkdtemp(prefix="bench-components-metrics-")
    env = server.production_env(
        database_url=database_url,
        redis_url=redis_url,
        public_key_pem=TokenIssuer().public_pem,  # production refuses to start without a key
        DJANGO_SETTINGS_MODULE="jia_payments.settings",
        STRIPE_WEBHOOK_UUID=str(uuid.uuid4()),
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
    )
    load_before = server.load_average()
    server.ensure_database(database_url, env)
    api._manage(env, "stripe_webhook_endpoint")
    child = subprocess.run(
        [server.PYTHON, "-m", "bench.components"],
        cwd=server.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    line = next((x for x in child.stdout.splitlines() if x.startswith("COMPONENTS ")), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"bench.components failed ({child.returncode}):\n{child.stdout[-3000:]}")
    figures = json.loads(line.removeprefix("COMPONENTS "))
    lines = [
        "## Components: what each change saves per request (one process, before and after alternately)",
        "",
        f"`python -m bench components` · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · commit "
        f"`{api.git_commit()}` · load average before {load_before}, after {server.load_average()}. "
        f"Median of {ROUNDS} rounds of `process_time`, per request.",
        "",
        "| change | before, CPU ms/request | after | saved |",
        "|---|---:|---:|---:|",
    ]
    for name, (before, after) in figures.items():
        log(f"  {name}: {before:.3f} -> {after:.3f} ms")
        lines.append(f"| {name} | {before:.3f} | {after:.3f} | {before - after:.3f} |")
    return "\n".join(lines)


# --- the child ---------------------------------------------------------------------------------


def _timed(function, n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        function()
    return (time.process_time() - began) * 1000 / n


def _compare(before, after, n: int) -> tuple[float, float]:
    pairs = [(_timed(before, n), _timed(after, n)) for _ in range(ROUNDS)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _logs() -> tuple[float, float]:
    import structlog

    from jia_payments.core.ops import logs

    sink = open(os.devnull, "w")
    handler = logging.StreamHandler(sink)
    root = logging.getLogger()
    root.handlers, root.level = [handler], logging.INFO
    request_log = structlog.get_logger("django_structlog.middlewares.request")
    access_log = logging.getLogger("gunicorn.access")
    fields = {"method": "GET", "path": "/api/v1/entitlements/check/", "status": 200, "duration_ms": 1.2}
    old_formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            logs.redact,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ],
        foreign_pre_chain=[*logs.SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
    )
    new_formatter = logs.formatter("json")
    srcfile = logging.addLevelName.__code__.co_filename
    structlog.contextvars.bind_contextvars(request_id=str(uuid.uuid4()), ip="127.0.0.1", user_id="u1")

    def before():
        handler.setFormatter(old_formatter)
        logging._srcfile = srcfile
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = True
        request_log.info("request_started", request="GET /api/v1/entitlements/check/", user_agent="wrk")
        request_log.info("request_finished", **fields)
        access_log.info(
            "access", extra={**fields, "bytes": 180, "remote_addr": "127.0.0.1", "user_agent": "wrk"}
        )

    def after():
        handler.setFormatter(new_formatter)
        logging._srcfile = None
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        request_log.debug("request_started", request="GET /api/v1/entitlements/check/", user_agent="wrk")
        request_log.info("request_finished", **fields)

    try:
        return _compare(before, after, 2000)
    finally:
        logging._srcfile = None
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def _health_check() -> tuple[float, float]:
    from django.db import connections
    from django_prometheus.db.backends.postgresql import base as instrumented

    connection = connections["default"]
    connection.ensure_connection()
    return _compare(
        lambda: instrumented.DatabaseWrapper.is_usable(connection),
        connection.is_usable,
        2000,
    )


def _throttle_and_cache() -> tuple[float, float]:
    from django.core.cache import cache as default_cache

    from entitlements import cache
    from jia_payments.core.api import throttling

    user_id = f"bench-components-{uuid.uuid4().hex}"
    throttle = throttling.UserRateThrottle()
    throttle.num_requests, throttle.duration, throttle._wait = 10**9, 60, 1
    window = (f"throttle:user:{user_id}:{int(time.time()) // 60}", 61)
    keys = [cache.generation_key(user_id), cache.entry_key(user_id)]
    store = cache._cache()

    def before():
        throttling._count_in_window(default_cache, *window)
        cache._get_many(store, keys)

    def after():
        pending = throttling.PendingCounts([(throttle, window)])
        token = throttling._pending.set(pending)
        try:
            cache._get_many(store, keys)
        finally:
            throttling._pending.reset(token)

    return _compare(before, after, 2000)


def _webhook_endpoint_read() -> tuple[float, float]:
    from djstripe.models import WebhookEndpoint

    endpoint_uuid = os.environ["STRIPE_WEBHOOK_UUID"]

    def read():
        WebhookEndpoint.objects.filter(djstripe_uuid=endpoint_uuid).only("djstripe_tolerance").first()

    return _compare(read, lambda: None, 1000)


def child() -> None:
    import django

    django.setup()
    figures = {
        "one JSON log line per request, orjson, no caller lookup": _logs(),
        "database health check: socket poll instead of SELECT 1": _health_check(),
        "rate-limit count and cache read in one Redis round trip": _throttle_and_cache(),
        "webhook: the endpoint row read once": _webhook_endpoint_read(),
    }
    print("COMPONENTS " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    child()
