"""Domain events: recorded in the outbox, in the transaction of the change they describe."""

import json
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from jia_payments.core.models import OutboxEvent

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
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = uuid.uuid4()
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": settings.EVENTS_SOURCE,
        "type": type,
        "subject": subject,
        "time": timezone.now().isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": json.loads(json.dumps(data, cls=DjangoJSONEncoder)),
    }
    event = OutboxEvent.objects.create(
        event_id=event_id,
        type=type,
        aggregate_id=str(aggregate_id),
        subject=subject,
        envelope=envelope,
    )
    request_relay_on_commit()
    return event


def request_relay_on_commit() -> None:
    """Once the current transaction commits, ask for a relay run (once per transaction).

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

    relay_events.delay()
