"""record_event: one outbox row in the caller's transaction, and a relay asked for on commit."""

import logging
import uuid

import pytest
from django.db import transaction

from jia_payments.core.models import OutboxEvent
from jia_payments.core.outbox.events import record_event
from jia_payments.core.outbox.services import outbox_relay
from testsupport.events import assert_cloudevent, record

pytestmark = pytest.mark.django_db


def test_a_committed_change_has_its_event_with_a_cloudevents_envelope():
    payment_id = uuid.uuid4()
    with transaction.atomic():
        event = record_event(
            type="payment.created",
            aggregate_id=payment_id,
            subject=f"payments/{payment_id}",
            data={"id": payment_id, "amount": 1000},
        )
    row = OutboxEvent.objects.get()
    assert row.pk == event.pk
    assert row.status == "pending"
    assert row.aggregate_id == str(payment_id)
    assert row.envelope["id"] == str(row.event_id)
    assert_cloudevent(row.envelope, type="payment.created", subject=f"payments/{payment_id}")
    assert row.envelope["data"] == {"id": str(payment_id), "amount": 1000}


def test_a_rolled_back_change_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        record()
        raise RuntimeError("the change failed")
    assert not OutboxEvent.objects.exists()


def test_an_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown event type"):
        record(type="payment.teleported")
    assert not OutboxEvent.objects.exists()


def test_the_apps_register_the_event_types_they_record():
    from jia_payments.core.outbox.events import registered_event_types

    assert registered_event_types() == {
        "payment.created",
        "payment.status.updated",
        "payment.completed",
        "payment.refunded",
        "entitlement.created",
        "entitlement.updated",
        "entitlement.expired",
        "checkout.session.created",
        "checkout.session.completed",
        "subscription.updated",
        "subscription.payment_failed",
        "subscription.canceled",
        "subscription.duplicate_canceled",
    }


def test_embedded_default_keeps_events_in_the_outbox(settings, django_capture_on_commit_callbacks):
    settings.EVENTS_PROVIDER = "outbox"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record()
    assert callbacks == []
    assert outbox_relay().published == 0
    assert OutboxEvent.objects.get().status == "pending"


def test_one_relay_is_asked_for_per_transaction(settings, django_capture_on_commit_callbacks):
    settings.EVENTS_PROVIDER = "log"
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for seq in range(3):
            record_event(type="payment.created", aggregate_id=seq, subject=f"payments/{seq}", data={})
    assert len(callbacks) == 1


def test_provider_log_writes_each_event_to_the_log_and_marks_it_sent(
    settings, caplog, django_capture_on_commit_callbacks
):
    settings.EVENTS_PROVIDER = "log"
    with caplog.at_level(logging.INFO, logger="jia_payments.events"):
        with django_capture_on_commit_callbacks(execute=True):
            first = record(seq=1)
            second = record(seq=2)
    logged = [r.getMessage() for r in caplog.records if r.name == "jia_payments.events"]
    assert len(logged) == 2
    assert str(first.event_id) in logged[0]
    assert str(second.event_id) in logged[1]
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 0


def test_a_relay_is_still_asked_for_when_a_savepoint_that_asked_rolls_back(
    settings, django_capture_on_commit_callbacks
):
    settings.EVENTS_PROVIDER = "log"
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            record_event(type="payment.created", aggregate_id=1, subject="payments/1", data={})
            raise RuntimeError("inner change failed")
        record_event(type="payment.created", aggregate_id=2, subject="payments/2", data={})
    assert len(callbacks) == 1
    assert list(OutboxEvent.objects.values_list("aggregate_id", flat=True)) == ["2"]


def test_a_burst_of_commits_enqueues_one_relay_run(settings, django_capture_on_commit_callbacks):
    """Workers on a broker (not eager): the relay is asked for with a short delay, and the commits
    before that run starts share it. Once it starts (and clears the request), a commit asks again."""
    from django.core.cache import cache

    from jia_payments.core.outbox import events, tasks

    settings.EVENTS_PROVIDER = "log"
    settings.EVENTS_RELAY_DELAY_SECONDS = 0.5
    enqueued = []
    app = tasks.relay_events.app
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    apply_async = tasks.relay_events.apply_async
    tasks.relay_events.apply_async = lambda **options: enqueued.append(options)

    def commit(seq: int = 0) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            record(seq=seq)
        assert events._requester().wait_idle()  # its thread has asked

    cache.delete(events.RELAY_REQUESTED_KEY)
    events._pending_run_starts_after = 0.0
    try:
        for seq in range(20):
            commit(seq)
        assert enqueued == [{"countdown": 0.5}]
        starts_after = events._pending_run_starts_after
        events._pending_run_starts_after = 0.0  # as another process, that knows nothing yet
        commit()
        assert len(enqueued) == 1  # the run has not started: the flag is still set...
        assert events._pending_run_starts_after == starts_after  # ...and says when it will
        events.relay_request_taken()  # what the task does first
        events._pending_run_starts_after = 0.0  # (its start time has come)
        commit()
        assert len(enqueued) == 2
    finally:
        tasks.relay_events.apply_async = apply_async
        app.conf.task_always_eager = eager
        cache.delete(events.RELAY_REQUESTED_KEY)
        events._pending_run_starts_after = 0.0
    assert OutboxEvent.objects.filter(status="pending").count() == 22


def test_recording_an_event_costs_one_insert(django_assert_num_queries):
    with django_assert_num_queries(1) as queries:  # inside the test's transaction, as a service's
        event = record_event(type="payment.created", aggregate_id=7, subject="payments/7", data={"id": 7})
    assert queries.captured_queries[0]["sql"].startswith('INSERT INTO "core_outboxevent"')
    row = OutboxEvent.objects.get()
    assert (row.pk, row.event_id, row.envelope, row.created_at) == (
        event.pk,
        event.event_id,
        event.envelope,
        event.created_at,
    )
    assert row.envelope["time"] == event.created_at.isoformat().replace("+00:00", "Z")
