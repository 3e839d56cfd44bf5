"""The relay against a real Kafka-protocol broker (tansu, started by the test session)."""

import multiprocessing
import os
import random
import signal
import time
import uuid

import pytest
from django.db import connections, transaction

from jia_payments.core.models import OutboxEvent
from jia_payments.core.outbox import backoff, publishers, services
from jia_payments.core.outbox.services import outbox_relay
from testsupport.events import (
    assert_cloudevent,
    assert_once_each_in_key_order,
    by_key,
    record,
    relay_until_drained,
)

# Only the outbox table is emptied after each test (a whole-database flush costs ~3 s here).
pytestmark = pytest.mark.django_db(transaction=True, available_apps=["jia_payments.core"])


def backlog(settings, *, aggregates: int, per_aggregate: int) -> list[OutboxEvent]:
    """Pending rows recorded while the relay is off, the aggregates' events interleaved."""
    provider, settings.EVENTS_PROVIDER = settings.EVENTS_PROVIDER, "outbox"
    keys = [uuid.uuid4() for _ in range(aggregates)]
    events = [record(key, seq=seq) for seq in range(per_aggregate) for key in keys]
    settings.EVENTS_PROVIDER = provider
    return events


def in_child(target, *args) -> multiprocessing.Process:
    """Run target in a forked process with its own database connection and producer."""
    connections.close_all()
    publishers.kafka_publisher.reset()
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    return process


def test_a_committed_event_is_published_with_its_envelope_key_and_content_type(kafka_events):
    payment_id = uuid.uuid4()
    event = record(payment_id, type="payment.created")

    [(key, envelope, headers)] = kafka_events.read(min_messages=1)
    assert key == str(payment_id)
    assert envelope == event.envelope
    assert_cloudevent(envelope, type="payment.created", subject=f"payments/{payment_id}")
    assert headers == {"content-type": b"application/cloudevents+json; charset=UTF-8"}
    event.refresh_from_db()
    assert event.status == "sent"
    assert event.sent_at is not None
    assert event.attempts == 1


def test_of_1000_transactions_exactly_the_800_committed_are_published_once(kafka_events, settings):
    stop = multiprocessing.get_context("fork").Event()

    def relay_alongside_the_writers():
        while not stop.is_set() or OutboxEvent.objects.filter(status="pending").exists():
            outbox_relay()
            time.sleep(0.01)

    relay = in_child(relay_alongside_the_writers)
    settings.EVENTS_PROVIDER = "outbox"  # the writers leave all publishing to that relay
    committed = []
    keys = [uuid.uuid4() for _ in range(100)]
    for n in range(1000):
        key = keys[n % len(keys)]
        if n % 5 == 4:
            with pytest.raises(RuntimeError), transaction.atomic():
                record(key, seq=n)
                raise RuntimeError("rolled back")
        else:
            committed.append(record(key, seq=n))
    stop.set()
    relay.join(120)
    assert relay.exitcode == 0

    assert len(committed) == 800
    assert OutboxEvent.objects.count() == 800
    assert not OutboxEvent.objects.filter(status="pending").exists()
    assert_once_each_in_key_order(kafka_events.read(min_messages=800), committed)


def test_two_relays_at_once_publish_500_rows_once_each_in_key_order(kafka_events, settings):
    events = backlog(settings, aggregates=10, per_aggregate=50)

    def relay():
        # Jitter between claim and publish, as a GC pause or a slow network would add: without
        # the claim's "no earlier pending row of this aggregate" rule, order breaks here.
        publish = publishers.kafka_publisher.publish
        publishers.kafka_publisher.publish = lambda messages: (
            time.sleep(random.random() / 50),
            publish(messages),
        )[1]
        published = 0
        while OutboxEvent.objects.filter(status="pending").exists():  # as beat's sweeps would
            published += outbox_relay(batch_size=10).published
        shares.put(published)

    shares = multiprocessing.get_context("fork").SimpleQueue()
    relays = [in_child(relay), in_child(relay)]
    for process in relays:
        process.join(120)
        assert process.exitcode == 0
    split = sorted(shares.get() for _ in relays)
    print("rows published by each relay:", split)
    assert sum(split) == 500

    assert not OutboxEvent.objects.filter(status="pending").exists()
    assert_once_each_in_key_order(kafka_events.read(min_messages=500), events)


def test_a_relay_killed_between_publish_and_mark_publishes_again_with_the_same_id(kafka_events, settings):
    [event] = backlog(settings, aggregates=1, per_aggregate=1)

    def relay_then_die_before_marking():
        services._mark_sent = lambda ids: os.kill(os.getpid(), signal.SIGKILL)
        outbox_relay()

    child = in_child(relay_then_die_before_marking)
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    [(_key, first, _headers)] = kafka_events.read(min_messages=1)
    event.refresh_from_db()
    assert event.status == "pending"

    assert outbox_relay().published == 1
    messages = kafka_events.read(min_messages=2)
    assert [envelope["id"] for _key, envelope, _headers in messages] == [str(event.event_id)] * 2
    assert messages[1][1] == first
    event.refresh_from_db()
    assert event.status == "sent"


def test_a_relay_killed_between_publishing_a_batch_and_marking_it_loses_nothing(kafka_events, settings):
    """A batch (the first row of each of 20 aggregates) published, the relay killed before it marks
    any: the next relay sends each of them again with its event id, then the rows behind them, in
    each aggregate's order; every row ends sent."""
    events = backlog(settings, aggregates=20, per_aggregate=2)
    expected = {}
    for event in sorted(events, key=lambda e: e.id):
        expected.setdefault(event.aggregate_id, []).append(str(event.event_id))

    def relay_then_die_before_marking():
        services._mark_sent = lambda ids: os.kill(os.getpid(), signal.SIGKILL)
        outbox_relay(batch_size=len(events))

    child = in_child(relay_then_die_before_marking)
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    before_the_kill = kafka_events.read(min_messages=len(expected))
    assert sorted(e["id"] for _k, e, _h in before_the_kill) == sorted(ids[0] for ids in expected.values())
    assert not OutboxEvent.objects.exclude(status="pending").exists()  # nothing marked

    relay_until_drained()
    published = by_key(kafka_events.read(min_messages=len(expected) + len(events)))
    assert set(published) == set(expected)
    for key, order in expected.items():
        envelopes = published[key]  # one key, one partition: in the order they were sent
        assert [e["id"] for e in envelopes] == [order[0], *order]  # the head again, same id, then the rest
        assert envelopes[0] == envelopes[1]  # the same event, re-sent
    sent = OutboxEvent.objects.filter(status="sent").count()
    lost = sum(len(set(order) - {e["id"] for e in published[key]}) for key, order in expected.items())
    print(
        f"\nrelay killed between publish and mark: {len(events)} rows, {len(before_the_kill)} published "
        f"before the kill and re-sent with the same id, {sent} marked sent, {lost} lost, "
        f"{sum(len(v) for v in published.values()) - len(events) - len(before_the_kill)} sent more than that"
    )
    assert sent == len(events)


def test_broker_down_rows_wait_the_relay_backs_off_then_drains(kafka_events, settings):
    kafka_events.broker.stop()
    events = []
    for seq in range(4):
        events += [record(key, seq=seq) for key in ("a", "b", "c")]  # each commit asks for a relay

    assert OutboxEvent.objects.filter(status="pending").count() == 12
    first = OutboxEvent.objects.order_by("id").first()
    assert first.attempts == 1  # tried once, then every later request found the relay backing off
    assert "KafkaTimeoutError" in first.last_error
    assert OutboxEvent.objects.filter(attempts=0).count() == 11
    assert backoff.failures() == 1
    assert outbox_relay().backing_off

    kafka_events.broker.start()
    kafka_events.broker.create_topic(kafka_events.topic)
    relay_until_drained()

    assert_once_each_in_key_order(kafka_events.read(min_messages=12), events)
    assert backoff.failures() == 0


def test_a_partly_failed_batch_republishes_only_the_unacknowledged_rows(kafka_events, settings):
    # A claim holds at most one row per aggregate (the oldest pending one), so an acknowledged
    # row of a batch never has an unacknowledged earlier row of its aggregate in that batch:
    # it is marked sent, and only the refused rows go out again, after it, in key order.
    events = backlog(settings, aggregates=4, per_aggregate=2)
    first_of = {event.aggregate_id: event for event in reversed(events)}
    refused_key = events[1].aggregate_id
    publish = publishers.kafka_publisher.publish

    def refuse_one(messages):
        assert len({m.key for m in messages}) == len(messages)  # one row per aggregate
        outcomes = publish([m for m in messages if m.key != refused_key])
        errors = iter(outcomes)
        return [TimeoutError("not acknowledged") if m.key == refused_key else next(errors) for m in messages]

    publishers.kafka_publisher.publish = refuse_one
    try:
        first = outbox_relay()
    finally:
        publishers.kafka_publisher.publish = publish
    assert (first.published, first.failed) == (3, 1)
    assert set(OutboxEvent.objects.filter(status="sent").values_list("pk", flat=True)) == {
        event.pk for key, event in first_of.items() if key != refused_key
    }
    backoff.clear()
    relay_until_drained()
    assert_once_each_in_key_order(kafka_events.read(min_messages=8), events)


def test_a_row_the_broker_can_never_take_goes_dead_without_reordering_its_aggregate(kafka_events, settings):
    from jia_payments.core.ops.metrics import OutboxCollector
    from jia_payments.core.outbox.services import outbox_republish

    settings.EVENTS_MAX_ATTEMPTS = 3
    stuck_key, other_key = uuid.uuid4(), uuid.uuid4()
    provider, settings.EVENTS_PROVIDER = settings.EVENTS_PROVIDER, "outbox"
    poison, held_back, other = record(stuck_key, seq=0), record(stuck_key, seq=1), record(other_key, seq=0)
    settings.EVENTS_PROVIDER = provider
    # Over kafka-python's 1 MiB request limit: refused at send, an error retrying cannot cure.
    envelope = {**poison.envelope, "data": {**poison.envelope["data"], "pad": "x" * 2_000_000}}
    OutboxEvent.objects.filter(pk=poison.pk).update(envelope=envelope)

    for _ in range(settings.EVENTS_MAX_ATTEMPTS):
        backoff.clear()
        outbox_relay()
    poison.refresh_from_db()
    assert (poison.status, poison.attempts) == ("dead", 3)
    assert "MessageSizeTooLarge" in poison.last_error
    # The other aggregate flowed; the dead row's later event waits behind it, in order.
    assert OutboxEvent.objects.get(pk=other.pk).status == "sent"
    assert OutboxEvent.objects.get(pk=held_back.pk).status == "pending"
    backoff.clear()
    assert outbox_relay().failed == 0  # the relay no longer trips over it
    [(key, envelope_sent, _)] = kafka_events.read(min_messages=1)
    assert (key, envelope_sent["data"]["seq"]) == (str(other_key), 0)
    gauges = {metric.name: metric.samples[0].value for metric in OutboxCollector().collect()}
    assert gauges["jia_payments_outbox_dead_events"] == 1
    assert gauges["jia_payments_outbox_pending_events"] == 1

    # Published again (admin's action): pending in its place, with fresh tries.
    OutboxEvent.objects.filter(pk=poison.pk).update(envelope=poison.envelope | {"data": {"seq": 0}})
    assert outbox_republish(ids=[poison.pk]) == 1
    relay_until_drained()
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"sent"}
    stuck = [(k, e["data"]["seq"]) for k, e, _ in kafka_events.read(min_messages=3) if k == str(stuck_key)]
    assert stuck == [(str(stuck_key), 0), (str(stuck_key), 1)]


def test_a_broker_that_is_down_never_makes_a_row_dead(kafka_events, settings):
    settings.EVENTS_MAX_ATTEMPTS = 2
    provider, settings.EVENTS_PROVIDER = settings.EVENTS_PROVIDER, "outbox"
    event = record(uuid.uuid4())
    settings.EVENTS_PROVIDER = provider
    kafka_events.broker.stop()
    try:
        for _ in range(4):
            backoff.clear()
            outbox_relay()
    finally:
        kafka_events.broker.start()
    event.refresh_from_db()
    assert (event.status, event.attempts >= 4) == ("pending", True)
