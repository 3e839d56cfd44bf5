"""POST /api/v1/payments/ with a Stripe-backed method creates a PaymentIntent (localstripe) first,
under our payment id (services.payment_create)."""

import pytest
from django.test import override_settings

from jia_payments.core.models import OutboxEvent
from payments.models import Payment
from payments.tests.payloads import GOOD

pytestmark = pytest.mark.django_db

PAYMENTS = "/api/v1/payments/"


@pytest.mark.parametrize("method", ["credit_card", "debit_card", "wallet"])
def test_a_card_payment_is_a_payment_intent_under_our_payment_id(service_client, localstripe, method):
    response = service_client.post(PAYMENTS, {**GOOD, "payment_method": method}, format="json")
    assert response.status_code == 201, response.json()
    payment = Payment.objects.get()
    intent = localstripe.get(f"/v1/payment_intents/{payment.external_payment_id}")
    assert (intent["amount"], intent["currency"], intent["status"]) == (
        1999,
        "usd",
        "requires_payment_method",
    )
    assert intent["metadata"] == {
        "payment_id": str(payment.pk),
        "customer_id": "customer_123",
        "order_id": "order_123",
    }
    assert response.json()["client_secret"] == intent["client_secret"]
    assert (payment.status, response.json()["external_payment_id"]) == ("pending", intent["id"])
    assert OutboxEvent.objects.get().envelope["data"]["external_payment_id"] == intent["id"]


def test_a_bank_transfer_does_not_go_to_stripe(service_client):
    response = service_client.post(PAYMENTS, {**GOOD, "payment_method": "bank_transfer"}, format="json")
    assert response.status_code == 201
    assert "client_secret" not in response.json()
    assert Payment.objects.get().external_payment_id == ""


def test_stripe_down_is_503_and_creates_nothing(service_client):
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9", STRIPE_MAX_NETWORK_RETRIES=0):
        response = service_client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert (response.status_code, response.json()["code"]) == (503, "stripe_unavailable")
    assert not Payment.objects.exists() and not OutboxEvent.objects.exists()
    again = service_client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert again.status_code == 201  # the key was not spent on the failure
