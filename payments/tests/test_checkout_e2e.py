"""Checkout end to end: a plan bought on Stripe Checkout (localstripe), its webhook processed by a
real Celery worker, the plan granted; and a checkout Stripe expires."""

import pytest
import requests

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.models import CheckoutSession, Payment, Refund
from payments.tests.stripe_e2e import BODY, PREMIUM_FEATURES, stamp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_whole_story_in_india_buy_pay_access_refund_revoked(stripe_e2e):
    e2e = stripe_e2e
    quote = requests.get(
        e2e.url("/api/v1/prices/"), params={"country": "IN", "plan_id": "premium_monthly"}, timeout=30
    )
    [price] = quote.json()["results"]
    assert (price["zone"], price["price_cents"], price["currency"]) == ("C", 400, "USD")

    created = e2e.api("user_in").post(
        e2e.url("/api/v1/checkout/sessions/"), json={**BODY, "plan_id": "premium_monthly", "country": "IN"}
    )
    assert created.status_code == 201, created.text
    checkout = created.json()
    assert (checkout["amount"], checkout["zone"], checkout["status"]) == (price["price_cents"], "C", "open")
    assert e2e.check("user_in")["reason"] == "no_entitlement"

    e2e.localstripe.complete_checkout_session(checkout["stripe_session_id"])
    completed = e2e.stripe_event("checkout.session.completed", checkout["stripe_session_id"])
    e2e.wait_processed(completed["id"])

    session = CheckoutSession.objects.get(pk=checkout["id"])
    payment = session.payment
    assert (session.status, payment.status, payment.amount, payment.currency) == (
        "complete",
        "completed",
        400,
        "USD",
    )
    subscription = e2e.stripe().v1.subscriptions.retrieve(session.stripe_subscription_id)
    period_end = stamp(subscription["items"].data[0].current_period_end)
    granted = Entitlement.objects.filter(user_id="user_in", status="active")
    assert granted.count() == PREMIUM_FEATURES
    assert {(e.payment_id, e.subscription_id, e.expires_at) for e in granted} == {
        (payment.pk, subscription.id, period_end)
    }
    access = e2e.check("user_in")
    assert (access["has_access"], access["reason"], access["expires_at"]) == (True, "active", period_end)
    assert access["source"] == {
        "entitlement_id": str(granted.get(feature_id="ai_assistant").pk),
        "plan_id": "premium_monthly",
        "family_id": None,
    }

    refund = e2e.api("svc", role="service").post(e2e.url(f"/api/v1/payments/{payment.pk}/refund/"), json={})
    assert refund.status_code == 200, refund.text
    assert refund.json()["status"] == "refunded"
    revoked = e2e.check("user_in")
    assert (revoked["has_access"], revoked["reason"], revoked["source"]) == (False, "revoked", None)
    e2e.wait_settled()
    assert e2e.stripe().v1.subscriptions.retrieve(subscription.id).status == "canceled"
    assert list(Refund.objects.values_list("amount", "status")) == [(400, "succeeded")]
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 400
    assert e2e.check("user_in")["reason"] == "revoked"  # the subscription's end changes nothing


def test_one_time_checkout_grants_a_lifetime_plan_and_records_a_completed_payment(stripe_e2e):
    session = stripe_e2e.buy("lifetime", "user_life")
    stripe_e2e.localstripe.complete_checkout_session(session.stripe_session_id)
    stripe_e2e.wait_processed(
        stripe_e2e.stripe_event("checkout.session.completed", session.stripe_session_id)["id"]
    )
    session.refresh_from_db()
    payment = session.payment
    assert (payment.status, payment.amount, payment.payment_method, payment.customer_id) == (
        "completed", 29999, "stripe_checkout", "user_life",
    )  # fmt: skip
    intent = stripe_e2e.stripe().v1.payment_intents.retrieve(payment.external_payment_id)
    assert intent.metadata["checkout_session_id"] == str(session.pk)
    assert set(Entitlement.objects.filter(user_id="user_life").values_list("expires_at", "payment_id")) == {
        (None, payment.pk)
    }
    assert sorted(OutboxEvent.objects.values_list("type", flat=True)) == sorted(
        ["checkout.session.created", "payment.created", "payment.status.updated", "payment.completed",
         "checkout.session.completed", *["entitlement.created"] * PREMIUM_FEATURES]
    )  # fmt: skip


def test_checkout_session_expired_expires_ours(stripe_e2e):
    session = stripe_e2e.buy("premium_monthly", "user_x")
    stripe_e2e.stripe().v1.checkout.sessions.expire(session.stripe_session_id)
    stripe_e2e.wait_processed(
        stripe_e2e.stripe_event("checkout.session.expired", session.stripe_session_id)["id"]
    )
    session.refresh_from_db()
    assert (session.status, session.payment) == ("expired", None)
    assert not Entitlement.objects.exists()
