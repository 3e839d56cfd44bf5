"""Subscriptions end to end: bought through checkout on the fake Stripe, changed, canceled,
resumed, failing and recovering; webhooks processed by a real Celery worker; access follows."""

import time
from datetime import timedelta

import pytest
import requests

from entitlements.models import Entitlement, Family
from payments.models import Payment, Subscription
from payments.tests.subscription_steps import (
    BODY,
    DECLINED,
    access_of,
    stamp,
    stripe_client,
    stripe_subscription,
    subscribe,
    subscription_events,
    subscription_get,
    subscription_post,
    subscriptions_of,
)
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_subscription_bought_through_checkout_is_listed_with_its_price(stripe_e2e):
    subscription = subscribe(stripe_e2e, "user_sub_list")
    stripe_sub = stripe_subscription(stripe_e2e, subscription)
    period_end = stamp(stripe_sub["items"].data[0].current_period_end)
    assert {
        k: subscription[k] for k in ("user_id", "plan_id", "status", "amount", "currency", "country")
    } == {
        "user_id": "user_sub_list",
        "plan_id": "premium_monthly",
        "status": "active",
        "amount": 999,
        "currency": "USD",
        "country": "",
    }
    assert subscription["current_period_end"] == period_end.isoformat().replace("+00:00", "Z")
    assert subscription_get(stripe_e2e, "user_sub_list", subscription["id"]) == subscription
    # another user sees nothing of it, a service sees it
    assert (
        stripe_e2e.api("user_other")
        .get(stripe_e2e.url(f"/api/v1/subscriptions/{subscription['id']}/"))
        .status_code
        == 404
    )
    assert subscriptions_of(stripe_e2e, "user_other") == []
    service = stripe_e2e.api("svc_billing", role="service")
    assert service.get(stripe_e2e.url(f"/api/v1/subscriptions/{subscription['id']}/")).json() == subscription


def test_a_second_checkout_for_a_recurring_plan_is_409_naming_the_subscription(stripe_e2e):
    subscription = subscribe(stripe_e2e, "user_twice")
    again = stripe_e2e.api("user_twice").post(
        stripe_e2e.url("/api/v1/checkout/sessions/"), json={**BODY, "plan_id": "premium_yearly"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_subscribed"
    assert subscription["id"] in again.json()["detail"]
    one_time = stripe_e2e.api("user_twice").post(
        stripe_e2e.url("/api/v1/checkout/sessions/"), json={**BODY, "plan_id": "lifetime"}
    )
    assert one_time.status_code == 201, one_time.text


def test_upgrade_to_the_family_plan_then_downgrade_without_proration(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_up")
    assert access_of(e2e, "user_up", "priority_support")["has_access"] is False

    upgraded = subscription_post(e2e, "user_up", subscription["id"], "change", {"plan_id": "family_monthly"})
    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["plan_id"], upgraded.json()["amount"]) == ("family_monthly", 1999)
    e2e.wait_settled()
    assert access_of(e2e, "user_up", "priority_support")["has_access"] is True
    family = Family.objects.get(owner_user_id="user_up")
    assert (str(family.pk), family.plan_id) == (upgraded.json()["family_id"], "family_monthly")
    added = e2e.api("user_up").post(
        e2e.url(f"/api/v1/families/{family.pk}/members/"), json={"user_id": "kid_up"}
    )
    assert added.status_code == 201, added.text
    assert access_of(e2e, "kid_up")["has_access"] is True
    stripe_sub = stripe_subscription(e2e, subscription)
    assert stripe_sub["items"].data[0].price.unit_amount == 1999

    # the next invoice: the new price, plus the unused time credited and the rest charged
    e2e.localstripe.advance_subscription(subscription["stripe_subscription_id"])
    e2e.wait_settled()
    invoice = stripe_client(e2e).v1.invoices.retrieve(stripe_subscription(e2e, subscription).latest_invoice)
    prorations = [
        line.amount for line in invoice.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2 and prorations[0] < 0 < prorations[1]
    assert invoice.amount_paid == 1999 + sum(prorations) > 1999
    renewal = Payment.objects.get(customer_id="user_up", order_id=f"invoice:{invoice.id}")
    assert (renewal.status, renewal.amount) == ("completed", invoice.amount_paid)

    downgraded = subscription_post(
        e2e, "user_up", subscription["id"], "change", {"plan_id": "premium_monthly", "proration": "none"}
    )
    assert downgraded.status_code == 200, downgraded.text
    e2e.wait_settled()
    assert (downgraded.json()["plan_id"], downgraded.json()["amount"]) == ("premium_monthly", 999)
    assert access_of(e2e, "user_up", "priority_support")["has_access"] is False
    assert access_of(e2e, "user_up")["has_access"] is True
    assert access_of(e2e, "kid_up")["has_access"] is False  # one seat: the owner's
    assert "subscription.updated" in subscription_events(subscription["id"])


def test_cancel_at_period_end_resume_then_the_period_passes(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_end")
    canceled = subscription_post(e2e, "user_end", subscription["id"], "cancel")
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["cancel_at_period_end"]) == ("active", True)
    e2e.wait_settled()
    assert access_of(e2e, "user_end")["has_access"] is True
    resumed = subscription_post(e2e, "user_end", subscription["id"], "resume")
    assert resumed.json()["cancel_at_period_end"] is False
    assert subscription_post(e2e, "user_end", subscription["id"], "resume").status_code == 409
    subscription_post(e2e, "user_end", subscription["id"], "cancel", {"at_period_end": True})
    e2e.wait_settled()

    e2e.localstripe.advance_subscription(subscription["stripe_subscription_id"])  # the period ends now
    e2e.wait_settled()
    assert subscription_get(e2e, "user_end", subscription["id"])["status"] == "canceled"
    assert access_of(e2e, "user_end")["has_access"] is False
    assert subscription_events(subscription["id"])[-1] == "subscription.canceled"
    assert subscription_post(e2e, "user_end", subscription["id"], "resume").status_code == 409


def test_cancel_now_ends_access_now(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_now")
    canceled = subscription_post(
        e2e, "user_now", subscription["id"], "cancel", {"at_period_end": False, "reason": "moving"}
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert access_of(e2e, "user_now")["has_access"] is False
    e2e.wait_settled()  # Stripe's deleted event changes nothing more
    assert access_of(e2e, "user_now")["reason"] == "revoked"
    assert not Payment.objects.filter(customer_id="user_now", status="refunded").exists()


def test_payment_failure_keeps_access_for_the_grace_days_then_recovery(stripe_e2e, settings):
    e2e = stripe_e2e
    assert settings.SUBSCRIPTION_GRACE_DAYS == 3
    within = subscribe(e2e, "user_grace")
    ended = int(time.time()) - 3600
    e2e.localstripe.advance_subscription(
        within["stripe_subscription_id"], ended_at=ended, payment_method=DECLINED
    )
    e2e.wait_settled()
    assert subscription_get(e2e, "user_grace", within["id"])["status"] == "past_due"
    access = access_of(e2e, "user_grace")
    assert access["has_access"] is True
    assert access["expires_at"] == (stamp(ended) + timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert "subscription.payment_failed" in subscription_events(within["id"])

    over = subscribe(e2e, "user_late")
    ended = int(time.time()) - 4 * 24 * 3600
    e2e.localstripe.advance_subscription(
        over["stripe_subscription_id"], ended_at=ended, payment_method=DECLINED
    )
    e2e.wait_settled()
    assert access_of(e2e, "user_late")["has_access"] is False  # the grace is over

    invoice_id = stripe_subscription(e2e, over).latest_invoice
    stripe_client(e2e).v1.invoices.pay(invoice_id, params={"payment_method": "pm_card_visa"})
    e2e.wait_settled()
    recovered = subscription_get(e2e, "user_late", over["id"])
    assert recovered["status"] == "active"
    period_end = stamp(stripe_subscription(e2e, over)["items"].data[0].current_period_end)
    access = access_of(e2e, "user_late")
    assert (access["has_access"], access["expires_at"]) == (
        True,
        period_end.isoformat().replace("+00:00", "Z"),
    )
    assert Payment.objects.filter(customer_id="user_late", status="completed").count() == 2


def test_the_billing_portal_page_cancels_at_the_period_end(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_portal")
    answer = e2e.api("user_portal").post(
        e2e.url("/api/v1/billing-portal/sessions/"), json={"return_url": "https://app.example/account"}
    )
    assert answer.status_code == 201, answer.text
    url = answer.json()["url"]
    assert url.startswith(f"{e2e.localstripe.url}/billing_portal/bps_")
    page = requests.get(url, timeout=30).text
    assert subscription["stripe_subscription_id"] in page and "https://app.example/account" in page
    portal_id = url.rsplit("/", 1)[-1]
    requests.post(
        f"{e2e.localstripe.url}/billing_portal/{portal_id}/cancel",
        data={"subscription": subscription["stripe_subscription_id"]},
        timeout=30,
    )
    e2e.wait_settled()
    wait_for(
        lambda: subscription_get(e2e, "user_portal", subscription["id"])["cancel_at_period_end"],
        what="cancel seen",
    )
    nobody = e2e.api("user_without").post(
        e2e.url("/api/v1/billing-portal/sessions/"), json={"return_url": "https://app.example/account"}
    )
    assert nobody.status_code == 404


def test_every_event_twice_and_newest_first_gives_the_same_end_state(stripe_e2e):
    """Changes made on Stripe's side (dashboard, portal): only webhooks tell us. Held back, then
    delivered newest first, each twice."""
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_storm")
    client = stripe_client(e2e)
    sub_id = subscription["stripe_subscription_id"]

    def on_stripes_side():
        price = client.v1.prices.create(
            params={
                "currency": "usd",
                "unit_amount": 1999,
                "recurring": {"interval": "month"},
                "product_data": {"name": "Family (monthly)"},
            }
        )
        item = client.v1.subscriptions.retrieve(sub_id)["items"].data[0].id
        client.v1.subscriptions.update(
            sub_id,
            params={"items": [{"id": item, "price": price.id}], "metadata": {"plan_id": "family_monthly"}},
        )
        e2e.localstripe.advance_subscription(sub_id, payment_method=DECLINED)
        client.v1.invoices.pay(
            client.v1.subscriptions.retrieve(sub_id).latest_invoice, params={"payment_method": "pm_card_visa"}
        )
        client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})

    held = e2e.delivered_twice_newest_first(on_stripes_side)
    assert {e["type"] for e in held} >= {
        "customer.subscription.updated",
        "invoice.payment_failed",
        "invoice.paid",
    }

    stripe_sub = client.v1.subscriptions.retrieve(sub_id)
    period_end = stamp(stripe_sub["items"].data[0].current_period_end)
    ours = Subscription.objects.get(stripe_subscription_id=sub_id)
    assert (ours.status, ours.plan_id, ours.amount, ours.cancel_at_period_end, ours.current_period_end) == (
        "active",
        "family_monthly",
        1999,
        True,
        period_end,
    )
    rows = Entitlement.objects.filter(subscription_id=sub_id, status="active")
    assert {(r.plan_id, r.expires_at) for r in rows} == {("family_monthly", period_end)}
    assert rows.count() == 10
    assert Payment.objects.filter(customer_id="user_storm", status="completed").count() == 2


def test_a_cancel_at_the_period_end_and_its_end_delivered_twice_newest_first(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_storm_end")
    sub_id = subscription["stripe_subscription_id"]

    def on_stripes_side():
        # e.g. the portal
        stripe_client(e2e).v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
        e2e.localstripe.advance_subscription(sub_id)

    held = e2e.delivered_twice_newest_first(on_stripes_side)
    assert [e["type"] for e in held] == ["customer.subscription.deleted", "customer.subscription.updated"]

    ours = Subscription.objects.get(stripe_subscription_id=sub_id)
    assert (ours.status, ours.cancel_at_period_end) == ("canceled", True)
    assert not Entitlement.objects.filter(subscription_id=sub_id, status="active").exists()
    assert access_of(e2e, "user_storm_end")["has_access"] is False
    # one per change
    assert subscription_events(subscription["id"]) == ["subscription.updated", "subscription.canceled"]


# --- every flow's Stripe events delivered twice, newest first: the same end state -----------


def test_a_purchase_delivered_twice_newest_first(stripe_e2e):
    e2e = stripe_e2e
    session = e2e.buy("premium_monthly", "user_storm_buy")
    held = e2e.delivered_twice_newest_first(
        lambda: e2e.localstripe.complete_checkout_session(session.stripe_session_id)
    )
    assert {e["type"] for e in held} >= {"checkout.session.completed", "customer.subscription.created"}
    [subscription] = subscriptions_of(e2e, "user_storm_buy")
    period_end = stamp(stripe_subscription(e2e, subscription)["items"].data[0].current_period_end)
    assert (subscription["status"], subscription["plan_id"]) == ("active", "premium_monthly")
    rows = Entitlement.objects.filter(user_id="user_storm_buy", status="active")
    assert {(r.subscription_id, r.expires_at) for r in rows} == {
        (subscription["stripe_subscription_id"], period_end)
    }
    assert rows.count() == 9
    assert Payment.objects.filter(customer_id="user_storm_buy", status="completed").count() == 1


def test_an_upgrade_and_a_downgrade_delivered_twice_newest_first(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_storm_down")
    upgraded = subscription_post(
        e2e, "user_storm_down", subscription["id"], "change", {"plan_id": "family_monthly"}
    )
    assert upgraded.status_code == 200, upgraded.text
    e2e.wait_settled()
    family_id = upgraded.json()["family_id"]
    added = e2e.api("user_storm_down").post(
        e2e.url(f"/api/v1/families/{family_id}/members/"), json={"user_id": "kid_storm"}
    )
    assert added.status_code == 201, added.text

    def downgrade():
        answer = subscription_post(
            e2e,
            "user_storm_down",
            subscription["id"],
            "change",
            {"plan_id": "premium_monthly", "proration": "none"},
        )
        assert answer.status_code == 200, answer.text

    held = e2e.delivered_twice_newest_first(downgrade)
    assert [e["type"] for e in held if e["type"].startswith("customer.")] == ["customer.subscription.updated"]
    ours = subscription_get(e2e, "user_storm_down", subscription["id"])
    assert (ours["plan_id"], ours["amount"]) == ("premium_monthly", 999)
    assert access_of(e2e, "user_storm_down", "priority_support")["has_access"] is False
    assert access_of(e2e, "user_storm_down")["has_access"] is True
    assert access_of(e2e, "kid_storm")["has_access"] is False


@pytest.mark.parametrize("where", ["api", "stripe_dashboard"])
def test_a_cancel_now_delivered_twice_newest_first_ends_access_now(stripe_e2e, where):
    """Canceled now through our API, or in Stripe's dashboard (only `customer.subscription.deleted`
    tells us): access ends now, not at the paid period's end."""
    e2e = stripe_e2e
    user_id = f"user_storm_now_{where}"
    subscription = subscribe(e2e, user_id)

    def cancel_now():
        if where == "api":
            body = {"at_period_end": False}
            assert subscription_post(e2e, user_id, subscription["id"], "cancel", body).status_code == 200
        else:
            stripe_client(e2e).v1.subscriptions.cancel(subscription["stripe_subscription_id"])

    held = e2e.delivered_twice_newest_first(cancel_now)
    assert [e["type"] for e in held] == ["customer.subscription.deleted"]
    assert subscription_get(e2e, user_id, subscription["id"])["status"] == "canceled"
    access = access_of(e2e, user_id)
    assert (access["has_access"], access["reason"]) == (False, "revoked")
    assert not Entitlement.objects.filter(user_id=user_id, status="active").exists()
    assert subscription_events(subscription["id"]).count("subscription.canceled") == 1


def test_a_payment_failure_past_the_grace_then_recovery_delivered_twice_newest_first(stripe_e2e):
    e2e = stripe_e2e
    subscription = subscribe(e2e, "user_storm_late")
    sub_id = subscription["stripe_subscription_id"]
    ended = int(time.time()) - 4 * 24 * 3600
    held = e2e.delivered_twice_newest_first(
        lambda: e2e.localstripe.advance_subscription(sub_id, ended_at=ended, payment_method=DECLINED)
    )
    assert {e["type"] for e in held} >= {"invoice.payment_failed", "customer.subscription.updated"}
    assert subscription_get(e2e, "user_storm_late", subscription["id"])["status"] == "past_due"
    assert access_of(e2e, "user_storm_late")["has_access"] is False
    assert subscription_events(subscription["id"]).count("subscription.payment_failed") == 1

    invoice_id = stripe_subscription(e2e, subscription).latest_invoice
    held = e2e.delivered_twice_newest_first(
        lambda: stripe_client(e2e).v1.invoices.pay(invoice_id, params={"payment_method": "pm_card_visa"})
    )
    assert {e["type"] for e in held} >= {"invoice.paid", "customer.subscription.updated"}
    period_end = stamp(stripe_subscription(e2e, subscription)["items"].data[0].current_period_end)
    access = access_of(e2e, "user_storm_late")
    assert (access["has_access"], access["expires_at"]) == (
        True,
        period_end.isoformat().replace("+00:00", "Z"),
    )
    assert Payment.objects.filter(customer_id="user_storm_late", status="completed").count() == 2
