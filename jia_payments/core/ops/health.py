"""Liveness (`/healthz`) and readiness (`/readyz`) for container orchestrators.

`/healthz` checks nothing but the process. `/readyz` runs django-health-check's checks of the
database, Redis, the Celery broker and (when events go to Kafka) Kafka, concurrently, and answers
503 naming each failing dependency. Every check has its own client timeout and django-health-check
gives up on it one second later, so the answer comes within READINESS_TIMEOUT + 1 s even when a
dependency accepts a connection and then hangs.
"""

import asyncio
import dataclasses
import datetime
import logging
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from kombu import Connection
from redis.asyncio import Redis as AsyncRedis

logger = logging.getLogger(__name__)

# Checks that hang keep a thread until their client timeout ends; a shared pool that is never shut
# down keeps such a thread from holding the response (asyncio.run would wait for its own pool).
_EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.READINESS_TIMEOUT)


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The broker Celery publishes to accepts a connection (no worker needs to be up)."""

    url: str = dataclasses.field(repr=False, default="")
    timeout: datetime.timedelta = dataclasses.field(default_factory=_timeout, repr=False)

    def run(self):
        seconds = self.timeout.total_seconds()
        options = {"socket_timeout": seconds, "socket_connect_timeout": seconds}
        try:
            with Connection(self.url, connect_timeout=seconds, transport_options=options) as connection:
                connection.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=seconds
                )
        except Exception as error:
            raise ServiceUnavailable(type(error).__name__) from error


def kafka_answers(address: str, timeout: float) -> bool:
    """True when the broker at host:port answers a Kafka ApiVersions (v0) request."""
    host, _, port = address.rpartition(":")
    correlation_id = 7
    client_id = b"readyz"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 8:
                chunk = sock.recv(8 - len(header))
                if not chunk:
                    return False
                header += chunk
    except (OSError, ValueError):
        return False
    return struct.unpack(">ii", header)[1] == correlation_id


@dataclasses.dataclass
class Kafka(HealthCheck):
    """At least one configured Kafka broker answers."""

    brokers: tuple[str, ...] = ()
    timeout: datetime.timedelta = dataclasses.field(default_factory=_timeout, repr=False)

    def run(self):
        if not any(kafka_answers(broker, self.timeout.total_seconds()) for broker in self.brokers):
            raise ServiceUnavailable("no broker answered")


# The name each check has in /readyz's answer.
CHECK_NAMES = {Database: "database", Redis: "redis", CeleryBroker: "celery_broker", Kafka: "kafka"}


def _name(check: HealthCheck) -> str:
    return next((name for cls, name in CHECK_NAMES.items() if isinstance(check, cls)), type(check).__name__)


def _redis_client_factory(url: str):
    seconds = settings.READINESS_TIMEOUT
    return lambda: AsyncRedis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)


def readiness_checks() -> list[HealthCheck]:
    checks: list[HealthCheck] = [Database(alias="default")]
    if settings.REDIS_URL:
        checks.append(Redis(client_factory=_redis_client_factory(settings.REDIS_URL)))
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks.append(CeleryBroker(url=settings.CELERY_BROKER_URL))
    if settings.EVENTS_PROVIDER == "kafka":
        checks.append(Kafka(brokers=tuple(settings.EVENTS_BROKERS)))
    for check in checks:
        check.timeout = _timeout()
    return checks


class ReadinessView(HealthCheckView):
    """200 when every dependency answers; 503 with `failing` naming the ones that do not."""

    def get_checks(self):
        return readiness_checks()

    def get_executor(self):
        return nullcontext(_EXECUTOR)

    async def get(self, request, *args, **kwargs):
        with self.get_executor() as executor:
            self.results = await asyncio.gather(*(c.get_result(executor) for c in self.get_checks()))
        checks = {_name(r.check): "ok" if not r.error else str(r.error) for r in self.results}
        failing = sorted(name for name, state in checks.items() if state != "ok")
        body = {"status": "unavailable" if failing else "ok", "checks": checks}
        if failing:
            body["failing"] = failing
            logger.warning("readiness_failed", extra={"failing": failing, "checks": checks})
        return JsonResponse(body, status=503 if failing else 200)


@never_cache
def liveness(request):
    """The process answers: no dependency is checked (a restart would not fix them)."""
    return JsonResponse({"status": "ok"})


readiness = ReadinessView.as_view()


PROBES = {"/healthz": liveness, "/readyz": async_to_sync(readiness)}


class ProbeMiddleware:
    """Answers the probes and GET /metrics first: no host check, no HTTPS redirect, no session, no
    request log line, not counted in the request metrics.

    Orchestrators and scrapers call them on the container's own address over plain HTTP, every
    few seconds. One middleware for both: every other request passes one dictionary lookup.
    """

    def __init__(self, get_response):
        from jia_payments.core.ops.metrics import metrics_view

        self.get_response = get_response
        self.answers = {**PROBES, "/metrics": metrics_view}

    def __call__(self, request):
        answer = self.answers.get(request.path_info.rstrip("/") or "/")
        if answer is not None and request.method in ("GET", "HEAD"):
            return answer(request)
        return self.get_response(request)
