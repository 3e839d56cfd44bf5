"""Domain events: recorded in the outbox, in the transaction of the change they describe."""

import datetime
import json
import logging
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from jia_payments.core.models import OutboxEvent

logger = logging.getLogger("jia_payments.events")

EVENT_TYPES = frozenset(
    {
        "payment.created",
        "payment.status.updated",
        "payment.completed",
        "payment.refunded",
        "entitlement.created",
        "entitlement.updated",
        "entitlement.expired",
        "checkout.session.created",
        "checkout.session.completed",
    }
)


def record_event(*, type: str, aggregate_id, subject: str, data: dict) -> OutboxEvent:
    """Write one CloudEvents 1.0 envelope to the outbox.

    Call it inside the service's `transaction.atomic()` block: a rolled-back change then leaves
    no event, and a committed change always has one. `data` is the object as the API shows it.

    It sits on every write's path, so it costs one INSERT and one json.dumps: on PostgreSQL the
    envelope's JSON text goes straight into the jsonb column (no model save, no second encoding),
    and the relay trigger is one per transaction and debounced (`request_relay_on_commit`).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    now = timezone.now()
    event_id, text = build_envelope(type, subject, data, at=now)
    event = OutboxEvent(
        event_id=event_id,
        type=type,
        aggregate_id=str(aggregate_id),
        subject=subject,
        envelope=json.loads(text),
        status=OutboxEvent.Status.PENDING,
        attempts=0,
        last_error="",
        created_at=now,
    )
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SQL, [event_id, type, event.aggregate_id, subject, text, now])
            event.pk = cursor.fetchone()[0]
        event._state.adding = False
        event._state.db = connection.alias
    else:  # the embedded default (SQLite)
        event.save(force_insert=True)
    request_relay_on_commit()
    return event


_INSERT_SQL = (
    f"INSERT INTO {OutboxEvent._meta.db_table} "  # noqa: S608 (the model's own table name)
    "(event_id, type, aggregate_id, subject, envelope, status, attempts, last_error, created_at) "
    f"VALUES (%s, %s, %s, %s, %s::jsonb, '{OutboxEvent.Status.PENDING}', 0, '', %s) RETURNING id"
)


def build_envelope(type: str, subject: str, data: dict, *, at=None) -> tuple[uuid.UUID, str]:
    """(event id, the CloudEvents 1.0 envelope as JSON text). Datetimes in `data` keep their
    microseconds, as the API renders them (DjangoJSONEncoder would cut them to milliseconds)."""
    event_id = uuid.uuid4()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": settings.EVENTS_SOURCE,
        "type": type,
        "subject": subject,
        "time": _iso(at or timezone.now()),
        "datacontenttype": "application/json",
        "data": data,
    }
    return event_id, json.dumps(envelope, cls=EventJSONEncoder, separators=(",", ":"))


def _iso(value: datetime.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class EventJSONEncoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime.datetime):
            return _iso(o)
        return super().default(o)


RELAY_REQUESTED_KEY = "events:relay:requested"
_CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)
# Until when (time.monotonic) a relay run this process enqueued certainly has not started yet.
_enqueued_run_pending_until = 0.0


def request_relay_on_commit() -> None:
    """Once the current transaction commits, ask for a relay run (once per transaction).

    Debounced, so that a commit costs almost nothing: the first commit enqueues the relay task
    to start EVENTS_RELAY_DELAY_SECONDS later and sets a flag in the cache (Redis in production,
    SET NX); the task clears the flag as it starts, before it claims rows. A commit that finds the
    flag set enqueues nothing: it committed before that run's claim, which therefore sees its
    rows. So the commits of one window share one run; within most of the window this process
    even knows without asking Redis that its own run has not started. The flag expires after
    EVENTS_SWEEP_SECONDS should its task be lost, and beat's sweep runs anyway.

    Robust: a failure to enqueue (Redis down) is logged, never raised into the committed request;
    Celery beat's sweep publishes the rows a few seconds later anyway.
    """
    if settings.EVENTS_PROVIDER == "outbox":
        return
    connection = transaction.get_connection()
    # Already asked for in this savepoint or one around it: that request lives exactly as long as
    # this one would (a rollback that drops it drops this one too).
    open_savepoints = set(connection.savepoint_ids)
    for savepoints, callback, _robust in connection.run_on_commit:
        if callback is _relay_now and savepoints <= open_savepoints:
            return
    transaction.on_commit(_relay_now, robust=True)


def _relay_now() -> None:
    global _enqueued_run_pending_until
    from jia_payments.core.outbox.tasks import relay_events

    if relay_events.app.conf.task_always_eager:  # in process (embedded default, tests): run it now
        relay_events.delay()
        return
    now = time.monotonic()
    if now < _enqueued_run_pending_until:
        return
    delay = settings.EVENTS_RELAY_DELAY_SECONDS
    try:
        first = cache.add(RELAY_REQUESTED_KEY, 1, timeout=max(1, int(settings.EVENTS_SWEEP_SECONDS)))
    except _CACHE_ERRORS as error:  # the cache is down: enqueue anyway (the broker likely is too)
        logger.warning("event relay request: cache unavailable (%s)", type(error).__name__)
        first = True
    if first:
        relay_events.apply_async(countdown=delay) if delay > 0 else relay_events.delay()
        # A margin for the worker's clock (the countdown is an ETA in wall-clock time).
        _enqueued_run_pending_until = now + delay * 0.6


def relay_request_taken() -> None:
    """The relay task, as it starts: commits from now on ask for a run of their own."""
    try:
        cache.delete(RELAY_REQUESTED_KEY)
    except _CACHE_ERRORS as error:  # its timeout clears it
        logger.warning("event relay request: cache unavailable (%s)", type(error).__name__)
