"""Domain events: recorded in the outbox, in the transaction of the change they describe."""

import datetime
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from jia_payments.core.api.timestamps import iso_utc
from jia_payments.core.inserts import NewRow, insert_rows
from jia_payments.core.models import OutboxEvent
from jia_payments.core.ops import tracing

logger = logging.getLogger("jia_payments.events")

_event_types: set[str] = set()


def register_event_types(*types: str) -> None:
    """Each app names the event types it records (in its AppConfig.ready); `record_event` refuses
    any other, so a typo in a type fails the write instead of reaching consumers."""
    _event_types.update(types)


def registered_event_types() -> frozenset[str]:
    return frozenset(_event_types)


def record_event(*, type: str, aggregate_id, subject: str, data: dict) -> OutboxEvent:
    """Write one CloudEvents 1.0 envelope to the outbox.

    Call it inside the service's `transaction.atomic()` block: a rolled-back change then leaves
    no event, and a committed change always has one. `data` is the object as the API shows it.

    It sits on every write's path, so it costs one INSERT and one json.dumps (no model save), and
    the relay trigger is one per transaction and debounced (`request_relay_on_commit`).
    """
    with new_event(type=type, aggregate_id=aggregate_id, subject=subject, data=data) as event:
        insert_rows(NewRow(event))
    return event


@contextmanager
def new_event(*, type: str, aggregate_id, subject: str, data: dict) -> Iterator[OutboxEvent]:
    """The event as an unsaved outbox row, for the block to write, alone (`record_event`) or in one
    statement with the change it describes (`core.inserts`). Traced, the block is the event's span,
    whose context the row keeps for the relay and the consumers. Once the block has written it,
    the relay is asked for when the transaction commits (at once outside a transaction: the
    statement has committed)."""
    if type not in _event_types:
        raise ValueError(f"unknown event type {type!r}")
    if not tracing.active():
        yield _event(type, aggregate_id, subject, data, trace_context=None)
    else:
        with tracing.span(f"outbox.record {type}", {"outbox.event_type": type}):
            event = _event(type, aggregate_id, subject, data, trace_context=tracing.current_carrier())
            yield event
            tracing.set_attributes({"cloudevents.event_id": str(event.event_id)})
    request_relay_on_commit()


def _event(type: str, aggregate_id, subject: str, data: dict, *, trace_context: dict | None) -> OutboxEvent:
    now = timezone.now()
    event_id, text = build_envelope(type, subject, data, at=now)
    return OutboxEvent(
        event_id=event_id,
        type=type,
        aggregate_id=str(aggregate_id),
        subject=subject,
        envelope=json.loads(text),
        trace_context=trace_context or None,
        status=OutboxEvent.Status.PENDING,
        attempts=0,
        last_error="",
        created_at=now,
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
        "time": iso_utc(at or timezone.now()),
        "datacontenttype": "application/json",
        "data": data,
    }
    return event_id, json.dumps(envelope, cls=EventJSONEncoder, separators=(",", ":"))


class EventJSONEncoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime.datetime):
            return iso_utc(o)
        return super().default(o)


RELAY_REQUESTED_KEY = "events:relay:requested"
_CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)
# A margin for the difference between this host's clock and the workers' (a countdown is an ETA).
RELAY_START_MARGIN_SECONDS = 0.02
# Before this time (time.time()), a relay run asked for and not started yet will see our commits.
_pending_run_starts_after = 0.0


def request_relay_on_commit() -> None:
    """Once the current transaction commits, ask for a relay run (once per transaction).

    Debounced, so that a commit costs almost nothing: the first commit enqueues the relay task
    to start EVENTS_RELAY_DELAY_SECONDS later and sets a flag in the cache (Redis in production,
    SET NX) holding that start time; the task clears the flag as it starts, before it claims rows.
    A commit that finds the flag set enqueues nothing: it committed before that run's claim,
    which therefore sees its rows. So the commits of one window share one run, and a process
    that has set or read the flag knows, until shortly before the run's start time, that it need
    not even ask Redis. The asking itself happens on a thread of the process (`_RelayRequester`),
    not in the committing request. The flag expires after EVENTS_SWEEP_SECONDS should its task be lost, and
    beat's sweep runs anyway (a commit missed through a badly skewed clock waits for it too).

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
    from jia_payments.core.outbox.tasks import relay_events

    if relay_events.app.conf.task_always_eager:  # in process (embedded default, tests): run it now
        relay_events.delay()
        return
    if time.time() < _pending_run_starts_after:
        return
    _requester().wake()


def _ask_for_relay_run() -> None:
    """Enqueue a relay run unless one is asked for and not started yet (the cache flag)."""
    global _pending_run_starts_after
    from jia_payments.core.outbox.tasks import relay_events

    delay = settings.EVENTS_RELAY_DELAY_SECONDS
    starts_at = time.time() + delay
    try:
        if not cache.add(RELAY_REQUESTED_KEY, starts_at, timeout=max(1, int(settings.EVENTS_SWEEP_SECONDS))):
            # A run is asked for. None: it has just started, after this commit: it sees it too.
            pending_start = cache.get(RELAY_REQUESTED_KEY)
            if pending_start is not None:
                _pending_run_starts_after = pending_start - RELAY_START_MARGIN_SECONDS
            return
    except _CACHE_ERRORS as error:  # the cache is down: enqueue anyway (the broker likely is too)
        logger.warning("event relay request: cache unavailable (%s)", type(error).__name__)
    relay_events.apply_async(countdown=delay) if delay > 0 else relay_events.delay()
    _pending_run_starts_after = starts_at - RELAY_START_MARGIN_SECONDS


class _RelayRequester:
    """A daemon thread per process that asks for relay runs, so a committing request does not
    wait for Redis round trips or a Celery publish: it only wakes the thread. Wakes that come
    while it is busy are asked for once, afterwards (each ask happens after the commits that woke
    it, which the debounce relies on). A process that dies before its thread asked leaves its
    rows to beat's sweep."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._condition = threading.Condition()
        self._woken = self._busy = False
        threading.Thread(target=self._run, name="events-relay-requester", daemon=True).start()

    def wake(self) -> None:
        with self._condition:
            self._woken = True
            self._condition.notify()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Until every wake so far has been asked for (tests)."""
        with self._condition:
            return self._condition.wait_for(lambda: not (self._woken or self._busy), timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._woken)
                self._woken, self._busy = False, True
            try:
                _ask_for_relay_run()
            except Exception:  # the thread must live on; beat's sweep covers this run
                logger.exception("event relay request failed")
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


_requester_instance: _RelayRequester | None = None
_requester_lock = threading.Lock()


def _requester() -> _RelayRequester:
    """This process's requester (a forked child, e.g. a gunicorn worker, starts its own)."""
    global _requester_instance
    requester = _requester_instance
    if requester is None or requester.pid != os.getpid():
        with _requester_lock:
            if _requester_instance is None or _requester_instance.pid != os.getpid():
                _requester_instance = _RelayRequester()
            requester = _requester_instance
    return requester


def relay_request_taken() -> None:
    """The relay task, as it starts: commits from now on ask for a run of their own."""
    try:
        cache.delete(RELAY_REQUESTED_KEY)
    except _CACHE_ERRORS as error:  # its timeout clears it
        logger.warning("event relay request: cache unavailable (%s)", type(error).__name__)
