"""Stripe webhooks end to end: localstripe signs and POSTs over HTTP to the live server,
dj-stripe verifies, a real Celery worker process on Redis processes, our state follows Stripe."""

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
import stripe

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.checkout import checkout_country, checkout_session_create
from payments.models import CheckoutSession, Payment, Refund, StripeEvent
from payments.tasks import reconcile_stripe_events
from testsupport.localstripe import API_KEY, WEBHOOK_SECRET, signature_header
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}
PREMIUM_FEATURES = 9


def _client(e2e) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": e2e.localstripe.url})


def _buy(e2e, plan_id: str, user_id: str, country: str = "US") -> CheckoutSession:
    country, source = checkout_country(requested=country, edge_value=None, trust_edge=False)
    return checkout_session_create(
        user_id=user_id, plan_id=plan_id, country=country, country_source=source, **BODY
    )


def _stamp(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, tz=UTC)


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
    assert check(e2e, "user_in")["reason"] == "no_entitlement"

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
    subscription = _client(e2e).v1.subscriptions.retrieve(session.stripe_subscription_id)
    period_end = _stamp(subscription["items"].data[0].current_period_end)
    granted = Entitlement.objects.filter(user_id="user_in", status="active")
    assert granted.count() == PREMIUM_FEATURES
    assert {(e.payment_id, e.subscription_id, e.expires_at) for e in granted} == {
        (payment.pk, subscription.id, period_end)
    }
    access = check(e2e, "user_in")
    assert (access["has_access"], access["reason"], access["expires_at"]) == (True, "active", period_end)
    assert access["source"] == {
        "entitlement_id": str(granted.get(feature_id="ai_assistant").pk),
        "plan_id": "premium_monthly",
        "family_id": None,
    }

    refund = e2e.api("svc", role="service").post(e2e.url(f"/api/v1/payments/{payment.pk}/refund/"), json={})
    assert refund.status_code == 200, refund.text
    assert refund.json()["status"] == "refunded"
    revoked = check(e2e, "user_in")
    assert (revoked["has_access"], revoked["reason"], revoked["source"]) == (False, "revoked", None)
    e2e.wait_settled()
    assert _client(e2e).v1.subscriptions.retrieve(subscription.id).status == "canceled"
    assert list(Refund.objects.values_list("amount", "status")) == [(400, "succeeded")]
    assert Payment.objects.get(pk=payment.pk).refunded_amount == 400
    assert check(e2e, "user_in")["reason"] == "revoked"  # the subscription's end changes nothing


def check(e2e, user_id: str, feature_code: str = "ai_assistant") -> dict:
    """GET /api/v1/entitlements/check/ as the user, over HTTP; times parsed."""
    response = e2e.api(user_id).get(
        e2e.url("/api/v1/entitlements/check/"), params={"feature_code": feature_code}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    if answer["expires_at"]:
        answer["expires_at"] = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    return answer


def test_one_time_checkout_grants_a_lifetime_plan_and_records_a_completed_payment(stripe_e2e):
    session = _buy(stripe_e2e, "lifetime", "user_life")
    stripe_e2e.localstripe.complete_checkout_session(session.stripe_session_id)
    stripe_e2e.wait_processed(
        stripe_e2e.stripe_event("checkout.session.completed", session.stripe_session_id)["id"]
    )
    session.refresh_from_db()
    payment = session.payment
    assert (payment.status, payment.amount, payment.payment_method, payment.customer_id) == (
        "completed", 29999, "stripe_checkout", "user_life",
    )  # fmt: skip
    intent = _client(stripe_e2e).v1.payment_intents.retrieve(payment.external_payment_id)
    assert intent.metadata["checkout_session_id"] == str(session.pk)
    assert set(Entitlement.objects.filter(user_id="user_life").values_list("expires_at", "payment_id")) == {
        (None, payment.pk)
    }
    assert sorted(OutboxEvent.objects.values_list("type", flat=True)) == sorted(
        ["checkout.session.created", "payment.created", "payment.status.updated", "payment.completed",
         "checkout.session.completed", *["entitlement.created"] * PREMIUM_FEATURES]
    )  # fmt: skip


def test_checkout_session_expired_expires_ours(stripe_e2e):
    session = _buy(stripe_e2e, "premium_monthly", "user_x")
    _client(stripe_e2e).v1.checkout.sessions.expire(session.stripe_session_id)
    stripe_e2e.wait_processed(
        stripe_e2e.stripe_event("checkout.session.expired", session.stripe_session_id)["id"]
    )
    session.refresh_from_db()
    assert (session.status, session.payment) == ("expired", None)
    assert not Entitlement.objects.exists()


def _paused_checkouts(
    e2e, count: int, plan_id: str = "premium_monthly"
) -> list[tuple[CheckoutSession, dict]]:
    """`count` paid checkouts whose `checkout.session.completed` Stripe has made but not sent."""
    e2e.localstripe.set_delivery(paused=True)
    try:
        sessions = [_buy(e2e, plan_id, f"user_{n}") for n in range(count)]
        for session in sessions:
            e2e.localstripe.complete_checkout_session(session.stripe_session_id)
        completed = {
            e["data"]["object"]["id"]: e for e in e2e.localstripe.events(type="checkout.session.completed")
        }
        while len(completed) < count:  # localstripe lists 100 a page
            page = e2e.localstripe.get(
                "/v1/events",
                type="checkout.session.completed",
                limit=100,
                starting_after=list(completed.values())[-1]["id"],
            )["data"]
            completed.update({e["data"]["object"]["id"]: e for e in page})
        return [(session, completed[session.stripe_session_id]) for session in sessions]
    finally:
        e2e.localstripe.set_delivery(paused=False)


def test_a_duplicate_storm_has_exactly_one_effect_per_event(stripe_e2e):
    """200 events, each delivered twice, shuffled, by 8 concurrent senders: 200 effects."""
    pairs = _paused_checkouts(stripe_e2e, 200)
    deliveries = [event["id"] for _, event in pairs] * 2
    random.Random(5).shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=8) as senders:
        statuses = list(
            senders.map(lambda event_id: stripe_e2e.localstripe.deliver_event(event_id), deliveries)
        )

    assert [status for results in statuses for status in (r["status"] for r in results)] == [200] * 400
    stripe_e2e.wait_processed(*(event["id"] for _, event in pairs))
    assert StripeEvent.objects.filter(type="checkout.session.completed").count() == 200
    assert set(StripeEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert Payment.objects.filter(status="completed").count() == 200
    assert CheckoutSession.objects.filter(status="complete").count() == 200
    assert Entitlement.objects.count() == 200 * PREMIUM_FEATURES
    assert OutboxEvent.objects.filter(type="payment.completed").count() == 200
    assert OutboxEvent.objects.filter(type="checkout.session.completed").count() == 200


def test_one_event_sent_20_times_at_once_has_one_effect_and_no_500(stripe_e2e):
    [(_, event)] = _paused_checkouts(stripe_e2e, 1)
    with ThreadPoolExecutor(max_workers=20) as senders:
        results = list(senders.map(lambda _: stripe_e2e.localstripe.deliver_event(event["id"]), range(20)))
    assert sorted(r["status"] for rs in results for r in rs) == [200] * 20
    stripe_e2e.wait_processed(event["id"])
    stripe_e2e.wait_settled()
    assert StripeEvent.objects.get(pk=event["id"]).attempts == 1
    assert Payment.objects.count() == 1
    assert Entitlement.objects.count() == PREMIUM_FEATURES
    assert OutboxEvent.objects.filter(type="checkout.session.completed").count() == 1


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong_secret",
        "one_byte_changed",
        "330_seconds_old",
        "330_seconds_ahead",
        "no_header",
        "garbage_header",
    ],
)
def test_a_badly_signed_call_is_400_and_nothing_is_processed(stripe_e2e, forgery):
    [(session, event)] = _paused_checkouts(stripe_e2e, 1)
    original = json.dumps(event).encode()
    now = int(time.time())
    body, secret, stamp = original, WEBHOOK_SECRET, now
    if forgery == "wrong_secret":
        secret = "whsec_" + "0" * 32
    # The tolerance is 300 s either way; 30 s beyond it, so that a request slowed down on a busy
    # machine (and time() truncated to the second) still arrives outside it.
    elif forgery == "330_seconds_old":
        stamp = now - 330
    elif forgery == "330_seconds_ahead":
        stamp = now + 330
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature_header(body, secret, stamp)}
    if forgery == "one_byte_changed":
        body = original.replace(b'"livemode": false', b'"livemode": fals3', 1)
        assert len(body) == len(original) and body != original
    elif forgery == "no_header":
        del headers["Stripe-Signature"]
    elif forgery == "garbage_header":
        headers["Stripe-Signature"] = "t=abc,v1=zz"

    assert stripe_e2e.post_webhook(body, headers).status_code == 400

    assert not StripeEvent.objects.exists()
    session.refresh_from_db()
    assert (session.status, Payment.objects.count(), Entitlement.objects.count()) == ("open", 0, 0)
    # the same event, rightly signed 290 s ago, is taken: the refusals above were for the forgery
    stamp = int(time.time()) - 290
    good = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(original, WEBHOOK_SECRET, stamp),
    }
    assert stripe_e2e.post_webhook(original, good).status_code == 200
    stripe_e2e.wait_processed(event["id"])


def test_a_handler_failing_once_is_retried_and_grants_once(stripe_e2e):
    [(session, event)] = _paused_checkouts(stripe_e2e, 1)
    # the handler re-reads the session from Stripe: make that call fail once (Stripe's 500)
    stripe_e2e.localstripe.fail_next("GET", f"/v1/checkout/sessions/{session.stripe_session_id}")
    assert stripe_e2e.localstripe.deliver_event(event["id"])[0]["status"] == 200

    stripe_e2e.wait_processed(event["id"])
    stored = StripeEvent.objects.get(pk=event["id"])
    assert (stored.status, stored.attempts, stored.last_error) == ("processed", 2, "")
    assert Payment.objects.count() == 1
    assert Entitlement.objects.filter(user_id=session.user_id).count() == PREMIUM_FEATURES


def test_a_handler_failing_every_try_is_failed_in_admin_and_reprocess_runs_it_again(stripe_e2e, admin_client):
    [(session, event)] = _paused_checkouts(stripe_e2e, 1)
    stripe_e2e.localstripe.fail_next("GET", f"/v1/checkout/sessions/{session.stripe_session_id}", times=4)
    stripe_e2e.localstripe.deliver_event(event["id"])

    failed = wait_for(
        lambda: StripeEvent.objects.filter(pk=event["id"], status="failed").first(), what="the event to fail"
    )
    assert failed.attempts == 4  # the first try and 3 retries
    assert "StripeUnavailable" in failed.last_error
    assert Payment.objects.count() == 0
    listing = admin_client.get("/admin/payments/stripeevent/?status__exact=failed")
    assert event["id"] in listing.content.decode()

    response = admin_client.post(
        "/admin/payments/stripeevent/",
        {"action": "reprocess", "_selected_action": [event["id"]]},
        follow=True,
    )
    assert "1 event(s) queued" in response.content.decode()
    stripe_e2e.wait_processed(event["id"])
    assert StripeEvent.objects.get(pk=event["id"]).attempts == 5
    assert Payment.objects.filter(status="completed").count() == 1


def test_reconciliation_processes_events_stripe_never_delivered(stripe_e2e):
    [(session, event)] = _paused_checkouts(stripe_e2e, 1)
    assert not StripeEvent.objects.exists()

    result = reconcile_stripe_events()  # beat's task, here; the events it finds go to the worker

    # the checkout's events of handled types: the session, its subscription, invoice, intent
    assert result == {"received": 4, "requeued": 0, "refunds_settled": 0}
    stripe_e2e.wait_processed(event["id"])
    assert StripeEvent.objects.get(pk=event["id"]).source == "reconciliation"
    session.refresh_from_db()
    assert session.status == "complete"


def _pending_stripe_payment(e2e, amount: int = 2500) -> tuple[Payment, str]:
    """A card payment made through the API, as a client app would: pending, with its intent."""
    body = {"amount": amount, "currency": "USD", "payment_method": "credit_card", "customer_id": "user_pi"}
    created = e2e.api("user_pi").post(e2e.url("/api/v1/payments/"), json=body)
    assert created.status_code == 201, created.text
    return Payment.objects.get(pk=created.json()["id"]), created.json()["external_payment_id"]


def _confirm(e2e, intent_id: str, card: str) -> None:
    client = _client(e2e)
    client.v1.payment_intents.update(intent_id, params={"payment_method": card})
    try:
        client.v1.payment_intents.confirm(intent_id)
    except stripe.CardError:
        pass  # the customer sees the decline; Stripe sends payment_intent.payment_failed


def test_payment_intent_succeeded_completes_the_payment(stripe_e2e):
    payment, intent_id = _pending_stripe_payment(stripe_e2e)
    intent = _client(stripe_e2e).v1.payment_intents.retrieve(intent_id)
    assert (intent.amount, intent.currency, intent.metadata["payment_id"]) == (2500, "usd", str(payment.pk))
    _confirm(stripe_e2e, intent_id, "pm_card_visa")
    stripe_e2e.wait_processed(stripe_e2e.stripe_event("payment_intent.succeeded", intent_id)["id"])
    payment.refresh_from_db()
    assert (payment.status, payment.external_payment_id) == ("completed", intent_id)


def test_payment_intent_payment_failed_fails_the_payment_with_the_reason(stripe_e2e):
    payment, intent_id = _pending_stripe_payment(stripe_e2e)
    _confirm(stripe_e2e, intent_id, "pm_card_chargeCustomerFail")
    stripe_e2e.wait_processed(stripe_e2e.stripe_event("payment_intent.payment_failed", intent_id)["id"])
    payment.refresh_from_db()
    assert (payment.status, payment.failure_reason) == ("failed", "Your card was declined.")


def test_a_failure_event_arriving_after_the_later_success_leaves_the_payment_completed(stripe_e2e):
    payment, intent_id = _pending_stripe_payment(stripe_e2e)
    stripe_e2e.localstripe.set_delivery(paused=True)
    _confirm(stripe_e2e, intent_id, "pm_card_chargeCustomerFail")
    _confirm(stripe_e2e, intent_id, "pm_card_visa")  # the customer tries another card
    stripe_e2e.localstripe.set_delivery(paused=False)
    succeeded = stripe_e2e.stripe_event("payment_intent.succeeded", intent_id)
    failed = stripe_e2e.stripe_event("payment_intent.payment_failed", intent_id)

    stripe_e2e.localstripe.deliver_event(succeeded["id"])
    stripe_e2e.wait_processed(succeeded["id"])
    stripe_e2e.localstripe.deliver_event(failed["id"])
    stripe_e2e.wait_processed(failed["id"])

    payment.refresh_from_db()
    assert (payment.status, payment.failure_reason) == ("completed", "")


def _paid_checkout(e2e, plan_id: str = "premium_monthly", user_id: str = "user_sub") -> CheckoutSession:
    session = _buy(e2e, plan_id, user_id)
    e2e.localstripe.complete_checkout_session(session.stripe_session_id)
    e2e.wait_processed(e2e.stripe_event("checkout.session.completed", session.stripe_session_id)["id"])
    e2e.wait_settled()
    session.refresh_from_db()
    return session


def test_a_refund_made_in_stripe_refunds_the_payment_and_cancels_its_entitlements(stripe_e2e):
    session = _paid_checkout(stripe_e2e, "lifetime", "user_dash")
    intent_id = session.payment.external_payment_id
    _client(stripe_e2e).v1.refunds.create(params={"payment_intent": intent_id, "amount": 10000})
    first = stripe_e2e.stripe_event(
        "charge.refunded", _client(stripe_e2e).v1.payment_intents.retrieve(intent_id).latest_charge
    )
    stripe_e2e.wait_processed(first["id"])
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.status, payment.refunded_amount) == ("completed", 10000)
    assert Entitlement.objects.filter(user_id="user_dash", status="active").count() == PREMIUM_FEATURES

    _client(stripe_e2e).v1.refunds.create(params={"payment_intent": intent_id})
    stripe_e2e.wait_settled()
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 29999)
    assert list(Refund.objects.order_by("amount").values_list("amount", "status", "requested_by")) == [
        (10000, "succeeded", "stripe"),
        (19999, "succeeded", "stripe"),
    ]
    assert not Entitlement.objects.filter(user_id="user_dash", status="active").exists()


def test_partial_refund_events_out_of_order_converge(stripe_e2e):
    session = _paid_checkout(stripe_e2e, "lifetime", "user_parts")
    intent_id = session.payment.external_payment_id
    stripe_e2e.localstripe.set_delivery(paused=True)
    client = _client(stripe_e2e)
    client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 9999})
    client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 20000})
    stripe_e2e.localstripe.set_delivery(paused=False)
    charge_id = client.v1.payment_intents.retrieve(intent_id).latest_charge
    older, newer = sorted(
        (
            e
            for e in stripe_e2e.localstripe.events(type="charge.refunded")
            if e["data"]["object"]["id"] == charge_id
        ),
        key=lambda e: e["data"]["object"]["amount_refunded"],
    )
    stripe_e2e.localstripe.deliver_event(newer["id"])
    stripe_e2e.wait_processed(newer["id"])
    stripe_e2e.localstripe.deliver_event(older["id"])
    stripe_e2e.wait_processed(older["id"])
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.status, payment.refunded_amount, payment.refunds.count()) == ("refunded", 29999, 2)
    assert OutboxEvent.objects.filter(type="payment.refunded").count() == 1


def test_a_refund_asked_for_twice_at_once_refunds_once(stripe_e2e):
    session = _paid_checkout(stripe_e2e, "lifetime", "user_twice")
    url = stripe_e2e.url(f"/api/v1/payments/{session.payment_id}/refund/")
    with ThreadPoolExecutor(max_workers=2) as callers:
        answers = list(
            callers.map(lambda _: stripe_e2e.api("svc", role="service").post(url, json={}), range(2))
        )
    assert sorted(a.status_code for a in answers) in ([200, 409], [200, 422])
    stripe_e2e.wait_settled()
    refunds = _client(stripe_e2e).v1.refunds.list(
        params={"payment_intent": session.payment.external_payment_id}
    )
    assert [r.amount for r in refunds.data] == [29999]
    assert Payment.objects.get(pk=session.payment_id).refunded_amount == 29999


def test_a_renewal_extends_access_and_records_its_payment(stripe_e2e):
    session = _paid_checkout(stripe_e2e)
    first_end = Entitlement.objects.filter(user_id="user_sub").values_list("expires_at", flat=True).first()

    stripe_e2e.localstripe.renew_subscription(session.stripe_subscription_id)
    stripe_e2e.wait_settled()

    subscription = _client(stripe_e2e).v1.subscriptions.retrieve(session.stripe_subscription_id)
    new_end = _stamp(subscription["items"].data[0].current_period_end)
    assert new_end > first_end
    assert set(Entitlement.objects.filter(user_id="user_sub").values_list("status", "expires_at")) == {
        ("active", new_end)
    }
    renewal = Payment.objects.exclude(pk=session.payment_id).get()
    assert (renewal.status, renewal.amount, renewal.customer_id) == ("completed", 999, "user_sub")
    assert renewal.metadata["stripe_subscription_id"] == subscription.id


def test_a_canceled_subscription_keeps_access_to_the_end_of_the_paid_period(stripe_e2e):
    session = _paid_checkout(stripe_e2e)
    client = _client(stripe_e2e)
    period_end = _stamp(
        client.v1.subscriptions.retrieve(session.stripe_subscription_id)["items"].data[0].current_period_end
    )
    client.v1.subscriptions.cancel(session.stripe_subscription_id)
    stripe_e2e.wait_processed(
        stripe_e2e.stripe_event("customer.subscription.deleted", session.stripe_subscription_id)["id"]
    )
    rows = Entitlement.objects.filter(user_id="user_sub")
    assert {row.expires_at for row in rows} == {period_end}
    stripe_e2e.localstripe.set_delivery(paused=True)  # no renewal of a canceled subscription
    with pytest.raises(requests.HTTPError):
        stripe_e2e.localstripe.renew_subscription(session.stripe_subscription_id)
    stripe_e2e.localstripe.set_delivery(paused=False)


def test_a_renewal_arriving_before_the_purchase_converges_to_stripes_state(stripe_e2e):
    session = _buy(stripe_e2e, "premium_monthly", "user_early")
    stripe_e2e.localstripe.set_delivery(paused=True)
    completed = stripe_e2e.localstripe.complete_checkout_session(session.stripe_session_id)
    stripe_e2e.localstripe.renew_subscription(completed["subscription"])
    stripe_e2e.localstripe.set_delivery(paused=False)
    events = stripe_e2e.localstripe.events()
    renewal = [
        e
        for e in events
        if e["type"] == "invoice.paid" and e["data"]["object"]["billing_reason"] == "subscription_cycle"
    ]
    updated = [e for e in events if e["type"] == "customer.subscription.updated"]
    created = [e for e in events if e["type"] == "customer.subscription.created"]
    purchase = stripe_e2e.stripe_event("checkout.session.completed", session.stripe_session_id)

    for event in [*renewal, *updated, *created, purchase]:  # newest first: the wrong order
        stripe_e2e.localstripe.deliver_event(event["id"])
        stripe_e2e.wait_processed(event["id"])

    subscription = _client(stripe_e2e).v1.subscriptions.retrieve(completed["subscription"])
    current_end = _stamp(subscription["items"].data[0].current_period_end)
    assert set(Entitlement.objects.filter(user_id="user_early").values_list("status", "expires_at")) == {
        ("active", current_end)
    }
    assert Payment.objects.filter(customer_id="user_early", status="completed").count() == 2


def test_staff_refund_in_full_from_the_admin(stripe_e2e, admin_client):
    session = _paid_checkout(stripe_e2e, "lifetime", "user_admin")
    action = {"action": "refund_in_full", "_selected_action": [str(session.payment_id)]}
    response = admin_client.post("/admin/payments/payment/", action, follow=True)
    assert "Give a reason: nothing was refunded." in response.content.decode()
    assert Payment.objects.get(pk=session.payment_id).status == "completed"

    action["reason"] = "requested_by_customer"
    response = admin_client.post("/admin/payments/payment/", action, follow=True)
    assert f"Payment {session.payment_id}: refunded" in response.content.decode()
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.status, payment.refunded_amount) == ("refunded", 29999)
    refund = Refund.objects.get()
    assert (refund.requested_by, refund.reason) == ("staff:admin", "requested_by_customer")
    assert not Entitlement.objects.filter(user_id="user_admin", status="active").exists()
