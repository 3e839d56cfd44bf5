"""A create cut off after its effect committed but before its answer was stored (its process
killed, its database connection gone) leaves its Idempotency-Key in progress. Its retry after the
lease makes nothing a second time: the payment, refund or checkout session is made under the
claim's effect id, Stripe is asked again under the same idempotency key, and the answer is the
one the first request would have given. The cut-off is the state it leaves (the row as a dead
request leaves it); test_database_restart.py cuts a live server's connection at that point."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jia_payments.core.models import IdempotencyKey, OutboxEvent
from jia_payments.protos.payment.v1 import payment_pb2 as pb
from jia_payments.protos.payment.v1.payment_pb2_grpc import PaymentServiceStub
from payments.models import CheckoutSession, Payment
from payments.tests.payloads import GOOD
from pricing.tests.factories import FeatureFactory, PlanFactory
from testsupport.grpc import auth, plain
from testsupport.problems import assert_problem

PAYMENTS = "/api/v1/payments/"
CHECKOUTS = "/api/v1/checkout/sessions/"
CHECKOUT = {
    "plan_id": "premium_monthly",
    "success_url": "https://app.example/ok",
    "cancel_url": "https://app.example/cancel",
}
LEASE = 60


def cut_off(key: str) -> None:
    """The claim as a request killed between its effect and its answer leaves it, lease over."""
    moved = IdempotencyKey.objects.filter(key=key, state=IdempotencyKey.State.COMPLETED).update(
        state=IdempotencyKey.State.IN_PROGRESS,
        response_status=None,
        response_body="",
        created_at=timezone.now() - timedelta(seconds=LEASE + 1),
    )
    assert moved == 1


@pytest.fixture(autouse=True)
def _lease(settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = LEASE


@pytest.mark.django_db
@pytest.mark.parametrize("payment_method", ["credit_card", "bank_transfer"])
def test_a_payment_cut_off_before_its_answer_is_made_once(api_client_for, localstripe, payment_method):
    client = api_client_for("customer_123")
    body = {**GOOD, "payment_method": payment_method}
    first = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="pay-cut")
    assert first.status_code == 201, first.json()
    cut_off("pay-cut")
    retried = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="pay-cut")
    assert retried.status_code == 201, retried.json()
    assert "Idempotent-Replayed" not in retried  # it ran again, and found what the first made
    assert retried.json() == first.json()  # the same payment, the same PaymentIntent and secret
    assert Payment.objects.count() == 1
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["payment.created"]
    if payment_method == "credit_card":
        intent = localstripe.get(f"/v1/payment_intents/{first.json()['external_payment_id']}")
        assert intent["metadata"]["payment_id"] == first.json()["id"]
    replayed = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="pay-cut")
    assert (replayed.json(), replayed["Idempotent-Replayed"]) == (first.json(), "true")


@pytest.mark.django_db
def test_a_cut_off_key_is_not_taken_by_another_request(api_client_for):
    client = api_client_for("customer_123")
    assert client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    cut_off("k")
    other = client.post(PAYMENTS, {**GOOD, "amount": 2999}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(other, 422, "idempotency_key_reused")  # the first may have made its payment
    assert list(Payment.objects.values_list("amount", flat=True)) == [1999]


@pytest.mark.django_db
def test_a_live_lease_is_still_409(api_client_for):
    client = api_client_for("customer_123")
    assert client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    cut_off("k")
    IdempotencyKey.objects.update(created_at=timezone.now())
    again = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(again, 409, "idempotency_key_in_progress")
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_refused_request_frees_its_key_for_a_corrected_one(api_client_for):
    client = api_client_for("customer_123")
    refused = client.post(PAYMENTS, {**GOOD, "currency": "XXQ"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert refused.status_code == 400
    assert not IdempotencyKey.objects.exists()
    corrected = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert corrected.status_code == 201
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_request_refused_by_a_business_rule_frees_its_key(api_client_for):
    client = api_client_for("customer_123")
    refused = client.post(
        PAYMENTS, {**GOOD, "customer_id": "someone_else"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert_problem(refused, 403, "permission_denied")
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_request_failed_at_stripe_is_retried_under_the_same_payment_id(api_client_for, localstripe):
    """Stripe unreachable (it may have made the PaymentIntent): 503, the key released at once with
    its effect id, so the retry asks Stripe under the same idempotency key."""
    client = api_client_for("customer_123")
    body = {**GOOD, "payment_method": "credit_card"}
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9", STRIPE_MAX_NETWORK_RETRIES=0):
        failed = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(failed, 503, "stripe_unavailable")
    [key] = IdempotencyKey.objects.all()
    assert key.state == IdempotencyKey.State.RELEASED
    retried = client.post(PAYMENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert retried.status_code == 201, retried.json()
    assert retried.json()["id"] == str(key.effect_id)
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_grpc_payment_cut_off_before_its_answer_is_made_once(grpc_channel, token_issuer):
    payments = PaymentServiceStub(grpc_channel)
    request = pb.CreatePaymentRequest(**GOOD, idempotency_key="grpc-cut")
    metadata = auth(token_issuer.token("customer_123"))
    first = payments.CreatePayment(request, metadata=metadata).payment
    cut_off("grpc-cut")
    retried = payments.CreatePayment(request, metadata=metadata).payment
    assert plain(retried) == plain(first)
    assert Payment.objects.count() == 1
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["payment.created"]


@pytest.mark.django_db
def test_a_checkout_cut_off_before_its_answer_makes_one_stripe_session(api_client_for, localstripe):
    PlanFactory(id="premium_monthly", name="Premium", price_cents=999, features=[FeatureFactory(code="ai")])
    client = api_client_for("user_cut")
    body = CHECKOUT
    first = client.post(CHECKOUTS, body, format="json", HTTP_IDEMPOTENCY_KEY="checkout-cut")
    assert first.status_code == 201, first.json()
    cut_off("checkout-cut")
    retried = client.post(CHECKOUTS, body, format="json", HTTP_IDEMPOTENCY_KEY="checkout-cut")
    assert retried.status_code == 201, retried.json()
    assert retried.json() == first.json()
    [session] = CheckoutSession.objects.all()
    assert session.stripe_session_id == first.json()["stripe_session_id"]
    assert OutboxEvent.objects.filter(type="checkout.session.created").count() == 1


@pytest.mark.django_db
def test_a_checkout_whose_stripe_session_was_never_recorded_is_sent_again_under_its_key(
    api_client_for, localstripe
):
    """Cut off after our row committed and before Stripe's answer was saved: the retry asks Stripe
    again with the same idempotency key and records the one session Stripe made."""
    PlanFactory(id="premium_monthly", name="Premium", price_cents=999, features=[FeatureFactory(code="ai")])
    client = api_client_for("user_cut")
    body = CHECKOUT
    first = client.post(CHECKOUTS, body, format="json", HTTP_IDEMPOTENCY_KEY="checkout-cut")
    assert first.status_code == 201
    CheckoutSession.objects.update(stripe_session_id="", url="")
    OutboxEvent.objects.filter(type="checkout.session.created").delete()
    cut_off("checkout-cut")
    retried = client.post(CHECKOUTS, body, format="json", HTTP_IDEMPOTENCY_KEY="checkout-cut")
    assert retried.status_code == 201, retried.json()
    assert retried.json()["stripe_session_id"] == first.json()["stripe_session_id"]
    assert (retried.json()["id"], retried.json()["url"]) == (first.json()["id"], first.json()["url"])
    assert CheckoutSession.objects.count() == 1


def test_a_refund_cut_off_before_its_answer_refunds_once(stripe_e2e):
    session = stripe_e2e.paid_checkout("lifetime", "user_cut")
    url = stripe_e2e.url(f"/api/v1/payments/{session.payment_id}/refund/")
    caller = stripe_e2e.api("svc", role="service")
    headers = {"Idempotency-Key": "refund-cut"}
    first = caller.post(url, json={"amount": 1000}, headers=headers)
    assert first.status_code == 200, first.json()
    cut_off("refund-cut")
    retried = caller.post(url, json={"amount": 1000}, headers=headers)
    assert retried.status_code == 200, retried.json()
    assert retried.json() == first.json()
    stripe_e2e.wait_settled()
    refunds = stripe_e2e.stripe().v1.refunds.list(
        params={"payment_intent": session.payment.external_payment_id}
    )
    assert [r.amount for r in refunds.data] == [1000]
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.refunded_amount, payment.refunds.count()) == (1000, 1)
