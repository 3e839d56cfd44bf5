"""Each event type of API.md ("Events") reaches the topic after the API call that causes it: a valid
CloudEvents 1.0 envelope, key = the aggregate id, `data` = the object exactly as the API answered it
(microseconds included). Relays run on commit (Celery eager), against the session's tansu broker;
Stripe is localstripe."""

import pytest

from pricing.tests.factories import FeatureFactory, PlanFactory
from testsupport.events import assert_cloudevent

pytestmark = pytest.mark.django_db(transaction=True)

PAYMENTS = "/api/v1/payments/"
ENTITLEMENTS = "/api/v1/entitlements/"
CHECKOUTS = "/api/v1/checkout/sessions/"
CHECKOUT_BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def published(kafka_events, count: int) -> list[tuple[str, dict]]:
    """(key, envelope) of the topic's `count` messages, in the order they were recorded."""
    messages = kafka_events.read(min_messages=count)
    assert len(messages) == count, [(m[0], m[1]["type"]) for m in messages]
    for _key, _envelope, headers in messages:
        assert headers == {"content-type": b"application/cloudevents+json; charset=UTF-8"}
    return sorted(((key, envelope) for key, envelope, _h in messages), key=lambda m: m[1]["time"])


def test_payment_created_completed_and_refunded_through_the_api(kafka_events, service_client, localstripe):
    card = {"amount": 1999, "currency": "USD", "customer_id": "customer_7", "order_id": "order_7"}
    created = ok(service_client.post(PAYMENTS, {**card, "payment_method": "credit_card"}, format="json"), 201)
    payment_id, intent_id = created.pop("id"), created.pop("external_payment_id")
    created.pop("client_secret")
    localstripe.post(f"/v1/payment_intents/{intent_id}", {"payment_method": "pm_card_visa"})
    localstripe.post(f"/v1/payment_intents/{intent_id}/confirm")
    url = f"{PAYMENTS}{payment_id}/"
    completed = ok(service_client.post(url + "status/", {"status": "completed"}, format="json"))
    refunded = ok(service_client.post(url + "refund/", {}, format="json"))
    assert refunded["status"] == "refunded"

    messages = published(kafka_events, 5)
    assert [envelope["type"] for _key, envelope in messages] == [
        "payment.created",
        "payment.status.updated",
        "payment.completed",
        "payment.status.updated",
        "payment.refunded",
    ]
    for key, envelope in messages:
        assert key == payment_id
        assert_cloudevent(envelope, type=envelope["type"], subject=f"payments/{payment_id}")
    assert messages[0][1]["data"] == {**created, "id": payment_id, "external_payment_id": intent_id}
    assert messages[1][1]["data"] == messages[2][1]["data"] == completed
    assert messages[3][1]["data"] == messages[4][1]["data"] == refunded
    assert len({envelope["id"] for _key, envelope in messages}) == 5


def test_entitlement_created_updated_and_expired_through_the_api(kafka_events, service_client):
    PlanFactory(id="premium_x", features=[FeatureFactory(code="calendar")])
    body = {"user_id": "user_bob", "feature_code": "calendar", "plan_id": "premium_x"}
    created = ok(
        service_client.post(ENTITLEMENTS, {**body, "expires_at": "2031-01-01T00:00:00Z"}, format="json"), 201
    )
    url = f"{ENTITLEMENTS}{created['id']}/"
    updated = ok(service_client.post(url + "expiry/", {"expires_at": "2032-01-01T00:00:00Z"}, format="json"))
    expired = ok(service_client.post(url + "status/", {"status": "expired"}, format="json"))

    messages = published(kafka_events, 3)
    assert [envelope["type"] for _key, envelope in messages] == [
        "entitlement.created",
        "entitlement.updated",
        "entitlement.expired",
    ]
    for (key, envelope), answer in zip(messages, [created, updated, expired], strict=True):
        assert key == created["id"]
        assert_cloudevent(envelope, type=envelope["type"], subject=f"entitlements/{created['id']}")
        assert envelope["data"] == answer


def test_checkout_session_created_and_completed_through_the_api(kafka_events, api_client_for, localstripe):
    PlanFactory(id="premium_monthly", price_cents=999, features=[FeatureFactory(code="ai")])
    PlanFactory(id="free", price_cents=0, features=[FeatureFactory(code="lists")])
    client = api_client_for("user_carol")
    paid = ok(client.post(CHECKOUTS, {**CHECKOUT_BODY, "plan_id": "premium_monthly"}, format="json"), 201)
    assert paid["url"].startswith(localstripe.url)
    free = ok(client.post(CHECKOUTS, {**CHECKOUT_BODY, "plan_id": "free"}, format="json"), 201)
    assert free["status"] == "complete"

    messages = published(kafka_events, 4)
    assert [(key, envelope["type"]) for key, envelope in messages] == [
        (paid["id"], "checkout.session.created"),
        (messages[1][0], "entitlement.created"),  # the free plan's one feature, granted at once
        (free["id"], "checkout.session.created"),
        (free["id"], "checkout.session.completed"),
    ]
    for key, envelope in messages:
        kind = "entitlements" if envelope["type"].startswith("entitlement.") else "checkout/sessions"
        assert_cloudevent(envelope, type=envelope["type"], subject=f"{kind}/{key}")
        assert envelope["data"]["id"] == key
    assert messages[0][1]["data"] == paid
    assert messages[3][1]["data"] == free
    assert messages[1][1]["data"]["user_id"] == "user_carol"


def test_broker_down_200_api_writes_succeed_then_all_their_events_are_published_once_in_order(
    kafka_events, service_client
):
    from jia_payments.core.models import OutboxEvent
    from testsupport.events import assert_once_each_in_key_order, relay_until_drained

    kafka_events.broker.stop()
    body = {"amount": 500, "currency": "EUR", "payment_method": "bank_transfer", "customer_id": "c"}
    ids = [ok(service_client.post(PAYMENTS, body, format="json"), 201)["id"] for _ in range(100)]
    for payment_id in ids:  # each payment's second write: two more events of its key
        ok(service_client.post(f"{PAYMENTS}{payment_id}/status/", {"status": "completed"}, format="json"))
    events = list(OutboxEvent.objects.order_by("id"))
    assert len(events) == 300
    assert all(event.status == "pending" for event in events)

    kafka_events.broker.start()
    kafka_events.broker.create_topic(kafka_events.topic)
    relay_until_drained()
    assert_once_each_in_key_order(kafka_events.read(min_messages=300), events)
