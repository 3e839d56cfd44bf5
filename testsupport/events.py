"""Small helpers shared by the event tests: record an event, check an envelope, drain the outbox."""

import time
import uuid
from collections import defaultdict
from datetime import datetime

from django.db import transaction

from jia_payments.core.models import OutboxEvent
from jia_payments.core.outbox.events import record_event
from jia_payments.core.outbox.services import outbox_relay

ENVELOPE_KEYS = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}


def record(aggregate_id=None, *, seq: int = 0, type: str = "payment.status.updated") -> OutboxEvent:
    """One event for an aggregate, in its own transaction; data carries a sequence number."""
    aggregate_id = aggregate_id or uuid.uuid4()
    with transaction.atomic():
        return record_event(
            type=type,
            aggregate_id=aggregate_id,
            subject=f"payments/{aggregate_id}",
            data={"id": str(aggregate_id), "seq": seq},
        )


def assert_cloudevent(envelope: dict, *, type: str, subject: str, source: str = "/jia-payments") -> None:
    assert set(envelope) == ENVELOPE_KEYS
    assert envelope["specversion"] == "1.0"
    assert uuid.UUID(envelope["id"])
    assert envelope["source"] == source
    assert envelope["type"] == type
    assert envelope["subject"] == subject
    assert envelope["time"].endswith("Z")
    assert datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).tzinfo is not None
    assert envelope["datacontenttype"] == "application/json"
    assert isinstance(envelope["data"], dict)


def by_key(messages: list[tuple]) -> dict[str, list[dict]]:
    """{key: [envelope, ...]} in topic order (one key lives on one partition)."""
    grouped = defaultdict(list)
    for key, envelope, _headers in messages:
        grouped[key].append(envelope)
    return dict(grouped)


def assert_once_each_in_key_order(messages: list[tuple], expected: list[OutboxEvent]) -> None:
    """Every expected event exactly once, each aggregate's events in the order they were recorded."""
    ids = [envelope["id"] for _key, envelope, _headers in messages]
    assert sorted(ids) == sorted(str(event.event_id) for event in expected)
    assert len(ids) == len(set(ids))
    expected_order = defaultdict(list)
    for event in sorted(expected, key=lambda e: e.id):
        expected_order[event.aggregate_id].append(str(event.event_id))
    published_order = {key: [e["id"] for e in envelopes] for key, envelopes in by_key(messages).items()}
    assert published_order == dict(expected_order)


def relay_until_drained(timeout: float = 60.0) -> None:
    """What beat's sweep does every few seconds, until the outbox is empty (backoff included)."""
    deadline = time.monotonic() + timeout
    while OutboxEvent.objects.filter(status="pending").exists() and time.monotonic() < deadline:
        outbox_relay()
        time.sleep(0.1)
