"""A webhook event's Stripe reads happen outside any database transaction or row lock: network time
holds no lock (record intent, call Stripe, apply the result). The end-to-end worker holds every
handler to it too (testsupport/celery_app.py refuses a Stripe read inside a transaction)."""

import pytest
import stripe
from django.db import connection, transaction

from payments.models import Payment, StripeEvent
from payments.stripe import gateway as stripe_gateway
from payments.stripe.events import stripe_event_process, stripe_event_receive
from payments.tests.payloads import GOOD
from testsupport.localstripe import API_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_payment_intent_is_read_outside_a_transaction_and_applied_once(
    service_client, localstripe, monkeypatch
):
    created = service_client.post(
        "/api/v1/payments/", {**GOOD, "payment_method": "credit_card"}, format="json"
    )
    assert created.status_code == 201, created.content
    intent_id = created.json()["external_payment_id"]
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe.url})
    client.v1.payment_intents.update(intent_id, params={"payment_method": "pm_card_visa"})
    client.v1.payment_intents.confirm(intent_id)

    reads = []
    retrieve = stripe_gateway.payment_intent_retrieve

    def recording(intent):
        reads.append(connection.in_atomic_block)
        return retrieve(intent)

    monkeypatch.setattr(stripe_gateway, "payment_intent_retrieve", recording)
    event = {
        "id": "evt_outside_tx", "object": "event", "type": "payment_intent.succeeded", "livemode": False,
        "created": 1_700_000_000, "data": {"object": {"id": intent_id, "object": "payment_intent"}},
    }  # fmt: skip
    with transaction.atomic():
        assert stripe_event_receive(event=event, source=StripeEvent.Source.WEBHOOK)
    # Celery runs eagerly here: receiving processed it; a second run (a redelivery) changes nothing.
    assert stripe_event_process(event_id="evt_outside_tx") == StripeEvent.Status.PROCESSED
    assert reads == [False]
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.COMPLETED
    assert StripeEvent.objects.get().attempts == 1
