"""Stripe's events and what our handlers make of them (payments/stripe/handlers.py), end to end:
PaymentIntents, renewals and cancellations, events out of order converging to Stripe's state."""

import pytest
import requests

from entitlements.models import Entitlement
from payments.models import Payment
from payments.tests.stripe_e2e import stamp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_payment_intent_succeeded_completes_the_payment(stripe_e2e):
    payment, intent_id = stripe_e2e.pending_card_payment()
    intent = stripe_e2e.stripe().v1.payment_intents.retrieve(intent_id)
    assert (intent.amount, intent.currency, intent.metadata["payment_id"]) == (2500, "usd", str(payment.pk))
    stripe_e2e.confirm(intent_id, "pm_card_visa")
    stripe_e2e.wait_processed(stripe_e2e.stripe_event("payment_intent.succeeded", intent_id)["id"])
    payment.refresh_from_db()
    assert (payment.status, payment.external_payment_id) == ("completed", intent_id)


def test_payment_intent_payment_failed_fails_the_payment_with_the_reason(stripe_e2e):
    payment, intent_id = stripe_e2e.pending_card_payment()
    stripe_e2e.confirm(intent_id, "pm_card_chargeCustomerFail")
    stripe_e2e.wait_processed(stripe_e2e.stripe_event("payment_intent.payment_failed", intent_id)["id"])
    payment.refresh_from_db()
    assert (payment.status, payment.failure_reason) == ("failed", "Your card was declined.")


def test_a_failure_event_arriving_after_the_later_success_leaves_the_payment_completed(stripe_e2e):
    payment, intent_id = stripe_e2e.pending_card_payment()
    stripe_e2e.localstripe.set_delivery(paused=True)
    stripe_e2e.confirm(intent_id, "pm_card_chargeCustomerFail")
    stripe_e2e.confirm(intent_id, "pm_card_visa")  # the customer tries another card
    stripe_e2e.localstripe.set_delivery(paused=False)
    succeeded = stripe_e2e.stripe_event("payment_intent.succeeded", intent_id)
    failed = stripe_e2e.stripe_event("payment_intent.payment_failed", intent_id)

    stripe_e2e.localstripe.deliver_event(succeeded["id"])
    stripe_e2e.wait_processed(succeeded["id"])
    stripe_e2e.localstripe.deliver_event(failed["id"])
    stripe_e2e.wait_processed(failed["id"])

    payment.refresh_from_db()
    assert (payment.status, payment.failure_reason) == ("completed", "")


def test_a_renewal_extends_access_and_records_its_payment(stripe_e2e):
    session = stripe_e2e.paid_checkout()
    first_end = Entitlement.objects.filter(user_id="user_sub").values_list("expires_at", flat=True).first()

    stripe_e2e.localstripe.renew_subscription(session.stripe_subscription_id)
    stripe_e2e.wait_settled()

    subscription = stripe_e2e.stripe().v1.subscriptions.retrieve(session.stripe_subscription_id)
    new_end = stamp(subscription["items"].data[0].current_period_end)
    assert new_end > first_end
    assert set(Entitlement.objects.filter(user_id="user_sub").values_list("status", "expires_at")) == {
        ("active", new_end)
    }
    renewal = Payment.objects.exclude(pk=session.payment_id).get()
    assert (renewal.status, renewal.amount, renewal.customer_id) == ("completed", 999, "user_sub")
    assert renewal.metadata["stripe_subscription_id"] == subscription.id


def test_a_canceled_subscription_keeps_access_to_the_end_of_the_paid_period(stripe_e2e):
    session = stripe_e2e.paid_checkout()
    client = stripe_e2e.stripe()
    period_end = stamp(
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
    session = stripe_e2e.buy("premium_monthly", "user_early")
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

    subscription = stripe_e2e.stripe().v1.subscriptions.retrieve(completed["subscription"])
    current_end = stamp(subscription["items"].data[0].current_period_end)
    assert set(Entitlement.objects.filter(user_id="user_early").values_list("status", "expires_at")) == {
        ("active", current_end)
    }
    assert Payment.objects.filter(customer_id="user_early", status="completed").count() == 2
