"""Writes on the outbox: relay pending rows, publish rows again, prune sent rows."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from jia_payments.core.models import OutboxEvent
from jia_payments.core.ops import tracing
from jia_payments.core.outbox import backoff
from jia_payments.core.outbox.publishers import Message, PublishError, get_publisher

logger = logging.getLogger("jia_payments.events")

PENDING = OutboxEvent.Status.PENDING
SENT = OutboxEvent.Status.SENT
DEAD = OutboxEvent.Status.DEAD
PRUNE_CHUNK = 10_000


@dataclass
class RelayResult:
    published: int = 0
    failed: int = 0
    backing_off: bool = False


def outbox_relay(*, batch_size: int | None = None, max_batches: int | None = None) -> RelayResult:
    """Publish pending rows, batch after batch, until none is left to claim (or max_batches).

    While the backoff after a failure runs, returns at once (backing_off=True) without touching
    the broker. A failed batch stops the run and extends the backoff; its rows stay pending.
    """
    result = RelayResult()
    publisher = get_publisher()
    if publisher is None:
        return result
    if backoff.wait_seconds() > 0:
        result.backing_off = True
        return result
    batch_size = batch_size or settings.EVENTS_BATCH_SIZE
    batches = 0
    while max_batches is None or batches < max_batches:
        published, failed = _relay_batch(publisher, batch_size)
        batches += 1
        result.published += published
        result.failed += failed
        if failed:
            delay = backoff.note_failure()
            logger.warning("event relay: %d events not acknowledged, next try in %.0f s", failed, delay)
            return result
        if not published:
            break
    if result.published and backoff.failures():
        backoff.clear()
        logger.info("event relay: broker acknowledges again")
    return result


def _relay_batch(publisher, batch_size: int) -> tuple[int, int]:
    """Claim, publish, and mark one batch in one transaction: the claim's row locks are held
    until the rows are marked, so a second relay skips them, and a relay that dies before its
    commit releases them still pending."""
    with transaction.atomic():
        rows = list(_claimable()[:batch_size])
        if not rows:
            return 0, 0
        messages = [Message(row.aggregate_id, row.envelope, row.trace_context) for row in rows]
        with _publish_span(messages):
            try:
                outcomes = publisher.publish(messages)
            except PublishError as exc:
                outcomes = [exc] * len(rows)
        sent, failed = _in_key_order(rows, outcomes)
        _mark_sent([row.id for row in sent])
        _mark_failed(failed)
    return len(sent), len(failed)


def _publish_span(messages: list[Message]):
    """Traced: the batch's publish, a producer span linked to each event's recording."""
    if not tracing.active():
        return contextlib.nullcontext()
    from opentelemetry.trace import SpanKind

    links = [link for m in messages if (link := tracing.link_to(m.trace_context)) is not None]
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": settings.EVENTS_TOPIC,
        "messaging.batch.message_count": len(messages),
        "outbox.event_types": sorted({m.envelope.get("type", "") for m in messages}),
    }
    return tracing.span(f"send {settings.EVENTS_TOPIC}", attributes, kind=SpanKind.PRODUCER, links=links)


def _claimable():
    """Pending rows, oldest first, that no other relay holds, and whose aggregate has no earlier
    pending (or dead) row: with two relays, one aggregate's rows are never in flight in both at
    once, and no row overtakes a dead one of its aggregate."""

    def earlier(status):
        return OutboxEvent.objects.filter(
            status=status, aggregate_id=OuterRef("aggregate_id"), id__lt=OuterRef("id")
        )

    return (
        OutboxEvent.objects.filter(status=PENDING)
        .filter(~Exists(earlier(PENDING)), ~Exists(earlier(DEAD)))
        .order_by("id")
        .only("id", "aggregate_id", "envelope", "trace_context")
        .select_for_update(skip_locked=True)
    )


def _in_key_order(rows, outcomes) -> tuple[list, list[tuple]]:
    """Split into (sent, failed). After one failure, an aggregate's later rows of this batch
    count as failed too (even if acknowledged), so they are published again after it, in order."""
    sent, failed, broken_keys = [], [], set()
    for row, error in zip(rows, outcomes, strict=True):
        if error is None and row.aggregate_id not in broken_keys:
            sent.append(row)
            continue
        broken_keys.add(row.aggregate_id)
        failed.append((row, error or "an earlier event of this aggregate was not acknowledged"))
    return sent, failed


def _mark_sent(ids: list[int]) -> None:
    if ids:
        OutboxEvent.objects.filter(id__in=ids).update(
            status=SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
        )


def _mark_failed(failed: list[tuple]) -> None:
    by_error: dict[tuple[str, bool], list[int]] = {}
    for row, error in failed:
        by_error.setdefault((_describe(error), _incurable(error)), []).append(row.id)
    for (error, incurable), ids in by_error.items():
        OutboxEvent.objects.filter(id__in=ids).update(attempts=F("attempts") + 1, last_error=error)
        if incurable:
            died = OutboxEvent.objects.filter(
                id__in=ids, status=PENDING, attempts__gte=settings.EVENTS_MAX_ATTEMPTS
            ).update(status=DEAD)
            if died:
                logger.error(
                    "event relay: %d events dead after %d refusals: %s",
                    died,
                    settings.EVENTS_MAX_ATTEMPTS,
                    error,
                )


def _incurable(error) -> bool:
    """The broker (or client) refused this very message, and trying again cannot help; a broker
    that is down or slow (retriable errors, a failed batch) never makes a row dead."""
    return (
        isinstance(error, Exception)
        and not isinstance(error, PublishError)
        and getattr(error, "retriable", True) is False
    )


def _describe(error) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:1000]


def outbox_republish(*, ids: list[int]) -> int:
    """Publish sent or dead rows again, with their original CloudEvents id (consumers drop
    duplicates); a dead row gets EVENTS_MAX_ATTEMPTS tries again, in its place in its aggregate."""
    from jia_payments.core.outbox.events import request_relay_on_commit

    with transaction.atomic():
        count = OutboxEvent.objects.filter(id__in=ids, status=SENT).update(status=PENDING, sent_at=None)
        count += OutboxEvent.objects.filter(id__in=ids, status=DEAD).update(status=PENDING, attempts=0)
        if count:
            request_relay_on_commit()
    return count


def outbox_prune_sent(*, older_than: timedelta | None = None) -> int:
    """Delete sent rows acknowledged longer ago than the retention. Pending rows are never deleted."""
    if older_than is None:
        older_than = timedelta(days=settings.EVENTS_RETENTION_DAYS)
    cutoff = timezone.now() - older_than
    old_sent = OutboxEvent.objects.filter(status=SENT, sent_at__lt=cutoff)
    deleted = 0
    while True:
        ids = list(old_sent.values_list("id", flat=True)[:PRUNE_CHUNK])
        if not ids:
            return deleted
        deleted += OutboxEvent.objects.filter(id__in=ids, status=SENT).delete()[0]
