"""Refunds end to end (payments/refunds.py): asked for through the API or the admin, or made in
Stripe's dashboard; full or partial, in any order, once."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.models import Payment, Refund
from payments.tests.stripe_e2e import PREMIUM_FEATURES

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_refund_made_in_stripe_refunds_the_payment_and_cancels_its_entitlements(stripe_e2e):
    session = stripe_e2e.paid_checkout("lifetime", "user_dash")
    intent_id = session.payment.external_payment_id
    stripe_e2e.stripe().v1.refunds.create(params={"payment_intent": intent_id, "amount": 10000})
    first = stripe_e2e.stripe_event(
        "charge.refunded", stripe_e2e.stripe().v1.payment_intents.retrieve(intent_id).latest_charge
    )
    stripe_e2e.wait_processed(first["id"])
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.status, payment.refunded_amount) == ("completed", 10000)
    assert Entitlement.objects.filter(user_id="user_dash", status="active").count() == PREMIUM_FEATURES

    stripe_e2e.stripe().v1.refunds.create(params={"payment_intent": intent_id})
    stripe_e2e.wait_settled()
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 29999)
    assert list(Refund.objects.order_by("amount").values_list("amount", "status", "requested_by")) == [
        (10000, "succeeded", "stripe"),
        (19999, "succeeded", "stripe"),
    ]
    assert not Entitlement.objects.filter(user_id="user_dash", status="active").exists()


def test_partial_refund_events_out_of_order_converge(stripe_e2e):
    session = stripe_e2e.paid_checkout("lifetime", "user_parts")
    intent_id = session.payment.external_payment_id
    stripe_e2e.localstripe.set_delivery(paused=True)
    client = stripe_e2e.stripe()
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
    session = stripe_e2e.paid_checkout("lifetime", "user_twice")
    url = stripe_e2e.url(f"/api/v1/payments/{session.payment_id}/refund/")
    with ThreadPoolExecutor(max_workers=2) as callers:
        answers = list(
            callers.map(lambda _: stripe_e2e.api("svc", role="service").post(url, json={}), range(2))
        )
    assert sorted(a.status_code for a in answers) in ([200, 409], [200, 422])
    stripe_e2e.wait_settled()
    refunds = stripe_e2e.stripe().v1.refunds.list(
        params={"payment_intent": session.payment.external_payment_id}
    )
    assert [r.amount for r in refunds.data] == [29999]
    assert Payment.objects.get(pk=session.payment_id).refunded_amount == 29999


def test_staff_refund_in_full_from_the_admin_after_confirming_the_access_it_revokes(stripe_e2e, admin_client):
    session = stripe_e2e.paid_checkout("lifetime", "user_admin")
    listing = admin_client.get("/admin/payments/payment/").content.decode()
    assert 'value="refund"' in listing and "refund_in_full" not in listing  # no one-click refund
    one_click = {"action": "refund_in_full", "_selected_action": [str(session.payment_id)], "reason": "x"}
    admin_client.post("/admin/payments/payment/", one_click, follow=True)
    assert Payment.objects.get(pk=session.payment_id).status == "completed"

    chosen = {"action": "refund", "_selected_action": [str(session.payment_id)]}
    page = admin_client.post("/admin/payments/payment/", chosen, follow=True)
    assert page.redirect_chain == [(f"/admin/payments/payment/{session.payment_id}/refund/", 302)]
    review = admin_client.post(
        page.redirect_chain[0][0], {"amount": "299.99", "reason": "requested_by_customer"}
    ).content.decode()
    granted = Entitlement.objects.filter(user_id="user_admin", status="active").select_related("plan")
    assert len(granted) == PREMIUM_FEATURES
    assert "Refund 299.99 USD?" in review and "this access is revoked at once" in review
    for row in granted:
        assert f"<li>user_admin: {row.feature_id} ({row.plan.name})</li>" in review
    assert Payment.objects.get(pk=session.payment_id).status == "completed" and not Refund.objects.exists()

    confirmed = {"amount": "299.99", "reason": "requested_by_customer", "confirmed": "on"}
    done = admin_client.post(page.redirect_chain[0][0], confirmed, follow=True).content.decode()
    assert "Refunded 299.99 USD." in done
    payment = Payment.objects.get(pk=session.payment_id)
    assert (payment.status, payment.refunded_amount) == ("refunded", 29999)
    refund = Refund.objects.get()
    assert (refund.requested_by, refund.reason) == ("staff:admin", "requested_by_customer")
    assert not Entitlement.objects.filter(user_id="user_admin", status="active").exists()
