"""Stripe events: stored once, processed once, retried, reprocessed, reconciled.

- `stripe_event_receive` stores an event (from the webhook or from reconciliation) under Stripe's
  event id; a second delivery of the same id stores nothing and enqueues nothing.
- `stripe_event_process` (run by a Celery task) locks the event's row, runs our handler for its
  type (`handlers.HANDLERS`) and marks it processed, all in one transaction: two workers
  given the same event cannot both apply it, and a failed handler leaves no partial effect.
- `stripe_events_reconcile` (Celery beat) asks Stripe for recent events we never received.
"""

import functools
import logging
import time
import traceback
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jia_payments.core.audit.trail import audit_context
from jia_payments.core.ops import tracing
from payments import metrics
from payments.models import StripeEvent
from payments.stripe import gateway
from payments.stripe.handlers import HANDLERS

logger = logging.getLogger(__name__)


def _enqueue(event_id: str, event_type: str) -> None:
    """After commit, the event's task; its log lines name the event (a worker binds the log context
    the message carries: the enqueuer's request id, and these fields, bound only while enqueuing)."""
    from payments.tasks import process_stripe_event

    def enqueue() -> None:
        with structlog.contextvars.bound_contextvars(stripe_event_id=event_id, stripe_event_type=event_type):
            process_stripe_event.delay(event_id)

    transaction.on_commit(enqueue)


def stripe_event_receive(*, event: dict, source: str) -> bool:
    """Store a Stripe event and, after commit, have it processed; answers whether it was new."""
    known = event["type"] in HANDLERS
    tracing.set_attributes({"stripe.event.id": event["id"], "stripe.event.type": event["type"]})
    row = StripeEvent(
        id=event["id"],
        type=event["type"],
        livemode=bool(event.get("livemode")),
        api_version=event.get("api_version") or "",
        stripe_created_at=datetime.fromtimestamp(event["created"], tz=UTC),
        payload=event,
        source=source,
        status=StripeEvent.Status.PENDING if known else StripeEvent.Status.IGNORED,
    )
    type_label = metrics.stripe_event_type_label(event["type"])
    if not _insert_once(row):
        metrics.STRIPE_EVENTS_RECEIVED.labels(type=type_label, outcome="duplicate").inc()
        return False  # delivered before (or at this very moment, by another request)
    received = metrics.STRIPE_EVENTS_RECEIVED.labels(type=type_label, outcome="new" if known else "ignored")
    transaction.on_commit(received.inc)
    if known:
        _enqueue(row.pk, row.type)
    return True


def _insert_once(row: StripeEvent) -> bool:
    """Insert the event unless its id is stored: one `INSERT ... ON CONFLICT DO NOTHING`, so a
    duplicate fails no statement (no savepoint; the caller's transaction stays usable). An
    uncommitted insert of the same id by another transaction makes this one wait for its end."""
    fields = StripeEvent._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(row, add=True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), values)
        return cursor.fetchone() is not None


@functools.cache
def _insert_sql() -> str:
    meta = StripeEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in meta.concrete_fields)
    values = ", ".join(["%s"] * len(meta.concrete_fields))
    pk = quote(meta.pk.column)
    # Only quoted identifiers from the model are interpolated; every value is a query parameter.
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({pk}) DO NOTHING RETURNING {pk}"
    )


_DONE = (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)


def stripe_event_process(*, event_id: str) -> str:
    """Run the handler of one event, once; answers the event's status afterwards.

    The handler's Stripe reads run first, outside any transaction or lock (payments.stripe.handlers);
    then, in one transaction holding the event's row lock, the change they returned is applied
    and the event marked processed. Two workers with the same event may both read Stripe; the
    second to take the lock finds it processed and applies nothing.
    """
    event = StripeEvent.objects.filter(pk=event_id).first()
    if event is None:
        logger.warning("stripe event %s is not stored here", event_id)
        metrics.STRIPE_EVENTS_PROCESSED.labels(type="unknown", outcome="missing").inc()
        return "missing"
    type_label = metrics.stripe_event_type_label(event.type)
    tracing.set_attributes({"stripe.event.id": event.pk, "stripe.event.type": event.type})
    if event.status in _DONE:
        metrics.STRIPE_EVENTS_PROCESSED.labels(type=type_label, outcome="skipped").inc()
        return event.status
    started = time.monotonic()
    # The audit trail names the event that made these changes (no person or API caller did).
    with audit_context(actor=f"stripe:{event.type}", stripe_event=event.pk):
        change = HANDLERS[event.type](event.payload["data"]["object"])
        with transaction.atomic():
            event = StripeEvent.objects.select_for_update().get(pk=event_id)
            if event.status in _DONE:  # another worker applied it meanwhile
                metrics.STRIPE_EVENTS_PROCESSED.labels(type=type_label, outcome="skipped").inc()
                return event.status
            if change is not None:
                change()
            _mark_processed(event, took=time.monotonic() - started, type_label=type_label)
    return event.status


def _mark_processed(event: StripeEvent, *, took: float, type_label: str) -> None:
    event.status = StripeEvent.Status.PROCESSED
    event.attempts += 1
    event.last_error = ""
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "attempts", "last_error", "processed_at", "updated_at"])
    lag = (event.processed_at - event.received_at).total_seconds()
    transaction.on_commit(lambda: _count_processed(type_label, took, lag))


def _count_processed(type_label: str, took: float, lag: float) -> None:
    metrics.STRIPE_EVENTS_PROCESSED.labels(type=type_label, outcome="processed").inc()
    metrics.STRIPE_EVENT_PROCESSING.labels(type=type_label).observe(took)
    metrics.STRIPE_EVENT_LAG.labels(type=type_label).observe(max(0.0, lag))


def stripe_event_record_failure(*, event_id: str, error: BaseException, final: bool) -> None:
    """Count a failed try; after the last one the event is `failed` (admin shows it, with why)."""
    detail = "".join(traceback.format_exception(error))[-4000:]
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status == StripeEvent.Status.PROCESSED:
            return
        event.attempts += 1
        event.last_error = detail
        event.status = StripeEvent.Status.FAILED if final else StripeEvent.Status.PENDING
        event.save(update_fields=["attempts", "last_error", "status", "updated_at"])
    metrics.STRIPE_EVENTS_PROCESSED.labels(
        type=metrics.stripe_event_type_label(event.type), outcome="failed" if final else "retried"
    ).inc()
    log = logger.error if final else logger.warning
    log(
        "stripe event %s failed (try %s%s): %r",
        event_id,
        event.attempts,
        ", the last" if final else "",
        error,
    )


def stripe_events_reprocess(*, event_ids: list[str]) -> int:
    """Run failed (or stuck) events again; answers how many were queued."""
    with transaction.atomic():
        events = list(
            StripeEvent.objects.select_for_update()
            .filter(pk__in=event_ids, status__in=[StripeEvent.Status.FAILED, StripeEvent.Status.PENDING])
            .values_list("pk", "type")
        )
        StripeEvent.objects.filter(pk__in=[pk for pk, _ in events]).update(
            status=StripeEvent.Status.PENDING, updated_at=timezone.now()
        )
        for event_id, event_type in events:
            _enqueue(event_id, event_type)
    return len(events)


def stripe_events_reconcile() -> dict[str, int]:
    """Receive the recent events Stripe has and we do not (Stripe retries a webhook for three
    days and, rarely, never delivers), and queue again events whose task was lost."""
    now = timezone.now()
    since = int((now - timedelta(hours=settings.STRIPE_RECONCILE_LOOKBACK_HOURS)).timestamp())
    received = 0
    for event in gateway.events_since(created_gte=since, types=sorted(HANDLERS)):
        if StripeEvent.objects.filter(pk=event["id"]).exists():
            continue
        with transaction.atomic():
            received += stripe_event_receive(event=event, source=StripeEvent.Source.RECONCILIATION)
    # A pending event untouched for longer than the longest retry wait has lost its task.
    stale_after = timedelta(seconds=settings.STRIPE_EVENT_RETRY_BACKOFF_MAX_SECONDS + 300)
    stale = list(
        StripeEvent.objects.filter(
            status=StripeEvent.Status.PENDING, updated_at__lt=now - stale_after
        ).values_list("pk", flat=True)
    )
    requeued = stripe_events_reprocess(event_ids=stale) if stale else 0
    return {"received": received, "requeued": requeued}
