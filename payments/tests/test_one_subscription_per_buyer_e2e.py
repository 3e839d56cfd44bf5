"""One subscription per buyer, end to end: a checkout may ask to change plan instead; checkouts of
one buyer made at once leave one open; a second subscription Stripe still made is canceled and
refunded. Real threads against the live server, localstripe, a real Celery worker."""

import pytest
import requests
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.models import CheckoutSession, Payment, Refund, Subscription
from payments.stripe import gateway
from payments.subscriptions import DUPLICATE_ACTOR
from payments.tests.stripe_e2e import PREMIUM_FEATURES
from payments.tests.subscription_steps import (
    BODY,
    access_of,
    stripe_client,
    stripe_subscription,
    subscribe,
    subscription_events,
    subscriptions_of,
)
from pricing.models import Plan
from testsupport.concurrency import concurrent_posts
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHECKOUT = "/api/v1/checkout/sessions/"


def test_a_checkout_asking_to_change_plan_changes_the_live_subscription(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_switch")
    refused = e2e.api("user_switch").post(e2e.url(CHECKOUT), json={**BODY, "plan_id": "family_monthly"})
    assert (refused.status_code, refused.json()["code"]) == (409, "already_subscribed")
    assert subscription["id"] in refused.json()["detail"] and "change_plan" in refused.json()["detail"]

    asked = {**BODY, "plan_id": "family_monthly", "change_plan": True, "proration": "none"}
    headers = {"Idempotency-Key": "switch-1"}
    changed = e2e.api("user_switch").post(e2e.url(CHECKOUT), json=asked, headers=headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["id"], body["plan_id"], body["amount"], body["status"]) == (
        subscription["id"],
        "family_monthly",
        1999,
        "active",
    )
    assert changed.headers["Location"] == f"/api/v1/subscriptions/{subscription['id']}/"
    again = e2e.api("user_switch").post(e2e.url(CHECKOUT), json=asked, headers=headers)
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (200, body, "true")
    e2e.wait_settled()
    assert [s["id"] for s in subscriptions_of(e2e, "user_switch")] == [subscription["id"]]
    assert CheckoutSession.objects.filter(user_id="user_switch").count() == 1  # no second checkout
    assert access_of(e2e, "user_switch", "priority_support")["has_access"] is True

    # proration "none": the next invoice is the new price alone
    e2e.localstripe.advance_subscription(subscription["stripe_subscription_id"])
    e2e.wait_settled()
    invoice = stripe_client(e2e).v1.invoices.retrieve(stripe_subscription(e2e, subscription).latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [1999]

    # a buyer without a subscription who asks to change plan gets a checkout
    fresh = e2e.api("user_fresh").post(
        e2e.url(CHECKOUT), json={**BODY, "plan_id": "premium_monthly", "change_plan": True}
    )
    assert (fresh.status_code, fresh.json()["status"]) == (201, "open")


def test_checkouts_of_one_buyer_made_at_once_leave_one_to_pay(stripe_e2e, token_issuer):
    e2e = stripe_e2e
    body = {**BODY, "plan_id": "premium_monthly"}
    results = concurrent_posts(e2e.url(CHECKOUT), token_issuer.token("user_tabs"), body, 4, one_key=False)
    assert {status for status, _, _ in results} <= {201, 409}, results
    made = [body for status, body, _ in results if status == 201]
    assert made, results
    assert {body["code"] for status, body, _ in results if status == 409} <= {"checkout_superseded"}
    [still_open] = CheckoutSession.objects.filter(user_id="user_tabs", status="open")
    at_stripe = e2e.localstripe.get("/v1/checkout/sessions", limit=100)["data"]  # also those never saved
    assert len(at_stripe) >= len(made)
    assert [c["id"] for c in at_stripe if c["status"] == "open"] == [still_open.stripe_session_id]

    for body in made:  # the replaced ones cannot be paid any more
        if body["id"] != str(still_open.pk):
            with pytest.raises(requests.HTTPError):
                e2e.localstripe.complete_checkout_session(body["stripe_session_id"])
    e2e.localstripe.complete_checkout_session(still_open.stripe_session_id)
    e2e.wait_settled()
    assert [s["status"] for s in subscriptions_of(e2e, "user_tabs")] == ["active"]
    assert Payment.objects.filter(customer_id="user_tabs", status="completed").count() == 1


def test_a_checkout_while_the_last_one_was_just_paid_is_refused(stripe_e2e):
    e2e = stripe_e2e
    first = e2e.buy("premium_monthly", "user_quick")
    answers = []

    def pay_then_buy_again():  # paid at Stripe; we have not heard yet
        e2e.localstripe.complete_checkout_session(first.stripe_session_id)
        answers.append(
            e2e.api("user_quick").post(e2e.url(CHECKOUT), json={**BODY, "plan_id": "premium_yearly"})
        )

    e2e.delivered_twice_newest_first(pay_then_buy_again)
    [second] = answers
    assert (second.status_code, second.json()["code"]) == (409, "already_subscribed")
    assert str(first.pk) in second.json()["detail"]
    assert [s["plan_id"] for s in subscriptions_of(e2e, "user_quick")] == ["premium_monthly"]
    assert not CheckoutSession.objects.filter(user_id="user_quick", status="open").exists()


def _opened_before_the_rule(user_id: str) -> CheckoutSession:
    """An open checkout as one made before checkouts replaced each other (or by another replica
    of an older release): our row and its Stripe session, nothing else asked."""
    plan = Plan.objects.get(pk="premium_monthly")
    session = CheckoutSession.objects.create(
        user_id=user_id, plan=plan, country="US", country_source="request", zone="A", multiplier=1,
        amount=plan.price_cents, currency=plan.currency, **BODY,
    )  # fmt: skip
    made = gateway.checkout_session_create(
        checkout_session_id=session.pk,
        billing_cycle=plan.billing_cycle,
        amount=session.amount,
        currency=session.currency,
        product_name=plan.name,
        metadata={"checkout_session_id": str(session.pk), "user_id": user_id, "plan_id": plan.pk},
        **BODY,
    )
    CheckoutSession.objects.filter(pk=session.pk).update(stripe_session_id=made["id"], url=made["url"])
    session.refresh_from_db()
    return session


def test_a_second_subscription_paid_at_once_is_canceled_and_refunded(stripe_e2e):
    e2e = stripe_e2e
    sessions = [_opened_before_the_rule("user_double") for _ in range(2)]

    def pay_both():
        for session in sessions:
            e2e.localstripe.complete_checkout_session(session.stripe_session_id)

    held = e2e.delivered_twice_newest_first(pay_both)
    assert {e["type"] for e in held} >= {"checkout.session.completed", "customer.subscription.created"}
    wait_for(  # the worker cancels and refunds after the events' commit
        lambda: (
            Payment.objects.filter(customer_id="user_double", status="refunded").exists()
            and Subscription.objects.filter(user_id="user_double", status="canceled").exists()
        ),
        what="the duplicate canceled and refunded",
    )
    e2e.wait_settled()  # and Stripe's deleted event processed

    def end_state():
        kept = Subscription.objects.get(user_id="user_double", duplicate_of=None)
        duplicate = Subscription.objects.get(user_id="user_double", duplicate_of=kept)
        return kept, duplicate

    def statuses():
        return [(s.pk, s.status) for s in end_state()]

    kept, duplicate = end_state()
    settled = statuses()
    assert (kept.status, duplicate.status) == ("active", "canceled")
    assert stripe_client(e2e).v1.subscriptions.retrieve(duplicate.stripe_subscription_id).status == "canceled"
    assert stripe_client(e2e).v1.subscriptions.retrieve(kept.stripe_subscription_id).status == "active"
    payments = Payment.objects.filter(customer_id="user_double")
    paid = {p.metadata["stripe_subscription_id"]: p for p in payments}
    assert (paid[kept.stripe_subscription_id].status, paid[duplicate.stripe_subscription_id].status) == (
        "completed",
        "refunded",
    )
    refunded = paid[duplicate.stripe_subscription_id]
    [refund] = Refund.objects.filter(payment=refunded)
    assert (refund.status, refund.amount, refund.requested_by) == ("succeeded", 999, DUPLICATE_ACTOR)
    assert [r["amount"] for r in gateway.refunds_list(refunded.external_payment_id)] == [999]
    granted = Entitlement.objects.filter(user_id="user_double", status="active")
    assert {e.subscription_id for e in granted} == {kept.stripe_subscription_id}
    assert granted.count() == PREMIUM_FEATURES
    assert access_of(e2e, "user_double")["has_access"] is True
    assert subscription_events(duplicate.pk).count("subscription.duplicate_canceled") == 1
    assert "subscription.duplicate_canceled" not in subscription_events(kept.pk)
    audited = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Refund), object_pk=str(refund.pk)
    ).first()
    assert audited is not None and "duplicate of subscription" in audited.additional_data["reason"]

    # Stripe retries every event again: nothing more happens
    for event in held:
        e2e.localstripe.deliver_event(event["id"])
    e2e.wait_settled()
    assert statuses() == settled
    assert Refund.objects.filter(payment__customer_id="user_double").count() == 1
    assert OutboxEvent.objects.filter(type="subscription.duplicate_canceled").count() == 1
