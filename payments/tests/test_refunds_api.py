"""POST /api/v1/payments/{id}/refund/ refuses, before calling Stripe, what cannot be refunded."""

import pytest

from jia_payments.core.models import OutboxEvent
from payments.models import Payment, Refund
from payments.tests.factories import PaymentFactory, RefundFactory, StripePaymentFactory

pytestmark = pytest.mark.django_db


def _refund_url(payment) -> str:
    return f"/api/v1/payments/{payment.pk}/refund/"


def test_a_pending_refund_counts_against_what_is_left(service_client):
    pending = RefundFactory(amount=1500, payment=StripePaymentFactory(amount=2000))
    response = service_client.post(_refund_url(pending.payment), {"amount": 501}, format="json")
    assert (response.status_code, response.json()["code"]) == (422, "refund_too_large")
    assert response.json()["errors"] == {"amount": ["At most 500."]}
    assert list(Refund.objects.values_list("pk", "status")) == [(pending.pk, "pending")]
    assert Payment.objects.get().refunded_amount == 0
    assert not OutboxEvent.objects.exists()


def test_a_payment_not_made_through_stripe_or_not_completed_is_refused(service_client):
    transfer = PaymentFactory(payment_method="bank_transfer", status="completed")
    pending = StripePaymentFactory(status="pending")
    refused = service_client.post(_refund_url(transfer), {}, format="json")
    not_yet = service_client.post(_refund_url(pending), {}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (422, "unprocessable")
    assert (not_yet.status_code, not_yet.json()["code"]) == (409, "invalid_transition")
    assert not Refund.objects.exists()


def test_an_end_user_may_not_refund(api_client_for):
    payment = StripePaymentFactory(customer_id="user_1")
    response = api_client_for("user_1").post(_refund_url(payment), {}, format="json")
    assert response.status_code == 403
    assert not Refund.objects.exists()
