"""What operators use: the read-only admin with "publish again", consume_events, pruning, backoff."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from jia_payments.core.models import OutboxEvent
from jia_payments.core.outbox import backoff
from jia_payments.core.outbox.services import _in_key_order, outbox_prune_sent
from testsupport.events import record

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:core_outboxevent_changelist")


def relayed(django_capture_on_commit_callbacks, *args, **kwargs) -> OutboxEvent:
    """record() inside the test's transaction, then run the on-commit relay it asked for."""
    with django_capture_on_commit_callbacks(execute=True):
        event = record(*args, **kwargs)
    event.refresh_from_db()
    return event


def test_admin_filters_searches_and_shows_the_envelope(admin_client, settings):
    settings.EVENTS_PROVIDER = "outbox"
    created = record(type="payment.created")
    updated = record(created.aggregate_id, type="payment.status.updated")
    OutboxEvent.objects.filter(pk=updated.pk).update(status="sent", sent_at=timezone.now())

    def listed(**params):
        response = admin_client.get(CHANGELIST, params)
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert listed(status__exact="pending") == {created.pk}
    assert listed(status__exact="sent") == {updated.pk}
    assert listed(type__exact="payment.status.updated") == {updated.pk}
    assert listed(q=f"payments/{created.aggregate_id}") == {created.pk, updated.pk}
    assert listed(q="payments/nobody") == set()
    page = admin_client.get(reverse("admin:core_outboxevent_change", args=[created.pk])).content.decode()
    assert str(created.event_id) in page
    assert "&quot;specversion&quot;: &quot;1.0&quot;" in page


def test_admin_is_read_only(admin_client, settings):
    settings.EVENTS_PROVIDER = "outbox"
    event = record()
    url = reverse("admin:core_outboxevent_change", args=[event.pk])
    assert admin_client.post(url, {"status": "sent"}).status_code == 403
    assert admin_client.get(reverse("admin:core_outboxevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:core_outboxevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.status == "pending"


def test_admin_publish_again_sends_the_same_event_id_again(
    admin_client, kafka_events, django_capture_on_commit_callbacks
):
    sent = relayed(django_capture_on_commit_callbacks)
    pending_elsewhere = OutboxEvent.objects.create(
        type="payment.created", aggregate_id="x", subject="payments/x", envelope={"id": "x"}
    )
    assert sent.status == "sent"

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": "publish_again", "_selected_action": [sent.pk, pending_elsewhere.pk]},
            follow=True,
        )
    assert "1 event(s) queued to be published again. 1 still pending" in response.content.decode()
    messages = kafka_events.read(min_messages=3)
    ids = [envelope["id"] for _key, envelope, _headers in messages]
    assert ids.count(str(sent.event_id)) == 2
    sent.refresh_from_db()
    assert sent.status == "sent"
    assert sent.attempts == 2


def test_consume_events_prints_each_event_as_one_json_line(kafka_events, django_capture_on_commit_callbacks):
    key = uuid.uuid4()
    first = relayed(django_capture_on_commit_callbacks, key, type="payment.created")
    second = relayed(django_capture_on_commit_callbacks, key, type="payment.completed")
    relayed(django_capture_on_commit_callbacks, type="payment.created")
    kafka_events.read(min_messages=3)

    def consume(*args) -> list[dict]:
        out = io.StringIO()
        where = ["--brokers", kafka_events.broker.bootstrap_servers, "--topic", kafka_events.topic]
        call_command("consume_events", *where, *args, stdout=out)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    everything = consume()
    assert len(everything) == 3
    mine = consume("--key", str(key))
    assert [line["event"] for line in mine] == [first.envelope, second.envelope]
    assert {line["key"] for line in mine} == {str(key)}
    assert [line["event"]["id"] for line in consume("--type", "payment.completed")] == [str(second.event_id)]
    assert len(consume("--limit", "2")) == 2


def test_consume_events_needs_a_broker(settings):
    settings.EVENTS_BROKERS = []
    with pytest.raises(CommandError, match="no broker"):
        call_command("consume_events")


def test_sent_rows_are_pruned_after_the_retention_and_pending_rows_never(settings):
    settings.EVENTS_PROVIDER = "outbox"
    settings.EVENTS_RETENTION_DAYS = 7
    old_sent, recent_sent, old_pending = record(), record(), record()
    now = timezone.now()
    OutboxEvent.objects.filter(pk=old_sent.pk).update(status="sent", sent_at=now - timedelta(days=8))
    OutboxEvent.objects.filter(pk=recent_sent.pk).update(status="sent", sent_at=now - timedelta(days=6))
    OutboxEvent.objects.filter(pk=old_pending.pk).update(created_at=now - timedelta(days=365))

    assert outbox_prune_sent() == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent_sent.pk, old_pending.pk}
    assert outbox_prune_sent(older_than=timedelta(0)) == 1
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [old_pending.pk]


def test_after_a_failure_an_aggregates_later_rows_wait_even_if_acknowledged():
    rows = [OutboxEvent(id=n, aggregate_id=key) for n, key in enumerate("abab", start=1)]
    refused = TimeoutError("not acknowledged")
    sent, failed = _in_key_order(rows, [refused, None, None, None])
    assert [row.id for row in sent] == [2, 4]
    assert [(row.id, str(error)) for row, error in failed] == [
        (1, "not acknowledged"),
        (3, "an earlier event of this aggregate was not acknowledged"),
    ]


def test_backoff_doubles_up_to_the_maximum_and_clears(settings):
    settings.EVENTS_BACKOFF_MAX_SECONDS = 5
    backoff.clear()
    assert [backoff.note_failure() for _ in range(5)] == [1, 2, 4, 5, 5]
    assert 0 < backoff.wait_seconds() <= 5
    backoff.clear()
    assert backoff.wait_seconds() == 0
    assert backoff.failures() == 0
