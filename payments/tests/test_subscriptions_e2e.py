"""Subscriptions end to end: bought through checkout on the fake Stripe, changed, canceled,
resumed, failing and recovering; webhooks processed by a real Celery worker; access follows."""

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import stripe

from entitlements.models import Entitlement, Family
from jia_payments.core.models import OutboxEvent
from payments.models import Payment, Subscription
from testsupport.localstripe import API_KEY
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}
DECLINED = "pm_card_chargeCustomerFail"  # a card that attaches, then declines charges


def _client(e2e) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": e2e.localstripe.url})


def _stamp(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, tz=UTC)


def _subscribe(e2e, user_id: str, plan_id: str = "premium_monthly") -> dict:
    """Checkout over the API, paid on the fake Stripe; answers our subscription over the API."""
    created = e2e.api(user_id).post(e2e.url("/api/v1/checkout/sessions/"), json={**BODY, "plan_id": plan_id})
    assert created.status_code == 201, created.text
    e2e.localstripe.complete_checkout_session(created.json()["stripe_session_id"])
    e2e.wait_settled()
    [subscription] = _subscriptions(e2e, user_id)
    return subscription


def _subscriptions(e2e, user_id: str) -> list[dict]:
    listed = e2e.api(user_id).get(e2e.url("/api/v1/subscriptions/"), params={"user_id": user_id})
    assert listed.status_code == 200, listed.text
    return listed.json()["results"]


def _get(e2e, user_id: str, subscription_id: str) -> dict:
    answer = e2e.api(user_id).get(e2e.url(f"/api/v1/subscriptions/{subscription_id}/"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _post(
    e2e, user_id: str, subscription_id: str, action: str, body: dict | None = None
) -> requests.Response:
    return e2e.api(user_id).post(
        e2e.url(f"/api/v1/subscriptions/{subscription_id}/{action}/"), json=body or {}
    )


def _access(e2e, user_id: str, feature_code: str = "ai_assistant") -> dict:
    answer = e2e.api(user_id).get(
        e2e.url("/api/v1/entitlements/check/"), params={"feature_code": feature_code}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _events(subscription_id: str) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_id=subscription_id, type__startswith="subscription.")
        .order_by("created_at", "id")
        .values_list("type", flat=True)
    )


def _stripe_sub(e2e, subscription: dict):
    return _client(e2e).v1.subscriptions.retrieve(subscription["stripe_subscription_id"])


def test_a_subscription_bought_through_checkout_is_listed_with_its_price(stripe_e2e):
    subscription = _subscribe(stripe_e2e, "user_sub_list")
    stripe_sub = _stripe_sub(stripe_e2e, subscription)
    period_end = _stamp(stripe_sub["items"].data[0].current_period_end)
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
    assert _get(stripe_e2e, "user_sub_list", subscription["id"]) == subscription
    # another user sees nothing of it, a service sees it
    assert (
        stripe_e2e.api("user_other")
        .get(stripe_e2e.url(f"/api/v1/subscriptions/{subscription['id']}/"))
        .status_code
        == 404
    )
    assert _subscriptions(stripe_e2e, "user_other") == []
    service = stripe_e2e.api("svc_billing", role="service")
    assert service.get(stripe_e2e.url(f"/api/v1/subscriptions/{subscription['id']}/")).json() == subscription


def test_a_second_checkout_for_a_recurring_plan_is_409_naming_the_subscription(stripe_e2e):
    subscription = _subscribe(stripe_e2e, "user_twice")
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
    subscription = _subscribe(e2e, "user_up")
    assert _access(e2e, "user_up", "priority_support")["has_access"] is False

    upgraded = _post(e2e, "user_up", subscription["id"], "change", {"plan_id": "family_monthly"})
    assert upgraded.status_code == 200, upgraded.text
    assert (upgraded.json()["plan_id"], upgraded.json()["amount"]) == ("family_monthly", 1999)
    e2e.wait_settled()
    assert _access(e2e, "user_up", "priority_support")["has_access"] is True
    family = Family.objects.get(owner_user_id="user_up")
    assert (str(family.pk), family.plan_id) == (upgraded.json()["family_id"], "family_monthly")
    added = e2e.api("user_up").post(
        e2e.url(f"/api/v1/families/{family.pk}/members/"), json={"user_id": "kid_up"}
    )
    assert added.status_code == 201, added.text
    assert _access(e2e, "kid_up")["has_access"] is True
    stripe_sub = _stripe_sub(e2e, subscription)
    assert stripe_sub["items"].data[0].price.unit_amount == 1999

    # the next invoice: the new price, plus the unused time credited and the rest charged
    e2e.localstripe.advance_subscription(subscription["stripe_subscription_id"])
    e2e.wait_settled()
    invoice = _client(e2e).v1.invoices.retrieve(_stripe_sub(e2e, subscription).latest_invoice)
    prorations = [
        line.amount for line in invoice.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2 and prorations[0] < 0 < prorations[1]
    assert invoice.amount_paid == 1999 + sum(prorations) > 1999
    renewal = Payment.objects.get(customer_id="user_up", order_id=f"invoice:{invoice.id}")
    assert (renewal.status, renewal.amount) == ("completed", invoice.amount_paid)

    downgraded = _post(
        e2e, "user_up", subscription["id"], "change", {"plan_id": "premium_monthly", "proration": "none"}
    )
    assert downgraded.status_code == 200, downgraded.text
    e2e.wait_settled()
    assert (downgraded.json()["plan_id"], downgraded.json()["amount"]) == ("premium_monthly", 999)
    assert _access(e2e, "user_up", "priority_support")["has_access"] is False
    assert _access(e2e, "user_up")["has_access"] is True
    assert _access(e2e, "kid_up")["has_access"] is False  # one seat: the owner's
    assert "subscription.updated" in _events(subscription["id"])


def test_cancel_at_period_end_resume_then_the_period_passes(stripe_e2e):
    e2e = stripe_e2e
    subscription = _subscribe(e2e, "user_end")
    canceled = _post(e2e, "user_end", subscription["id"], "cancel")
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["cancel_at_period_end"]) == ("active", True)
    e2e.wait_settled()
    assert _access(e2e, "user_end")["has_access"] is True
    resumed = _post(e2e, "user_end", subscription["id"], "resume")
    assert resumed.json()["cancel_at_period_end"] is False
    assert _post(e2e, "user_end", subscription["id"], "resume").status_code == 409
    _post(e2e, "user_end", subscription["id"], "cancel", {"at_period_end": True})
    e2e.wait_settled()

    e2e.localstripe.advance_subscription(subscription["stripe_subscription_id"])  # the period ends now
    e2e.wait_settled()
    assert _get(e2e, "user_end", subscription["id"])["status"] == "canceled"
    assert _access(e2e, "user_end")["has_access"] is False
    assert _events(subscription["id"])[-1] == "subscription.canceled"
    assert _post(e2e, "user_end", subscription["id"], "resume").status_code == 409


def test_cancel_now_ends_access_now(stripe_e2e):
    e2e = stripe_e2e
    subscription = _subscribe(e2e, "user_now")
    canceled = _post(
        e2e, "user_now", subscription["id"], "cancel", {"at_period_end": False, "reason": "moving"}
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert _access(e2e, "user_now")["has_access"] is False
    e2e.wait_settled()  # Stripe's deleted event changes nothing more
    assert _access(e2e, "user_now")["reason"] == "revoked"
    assert not Payment.objects.filter(customer_id="user_now", status="refunded").exists()


def test_payment_failure_keeps_access_for_the_grace_days_then_recovery(stripe_e2e, settings):
    e2e = stripe_e2e
    assert settings.SUBSCRIPTION_GRACE_DAYS == 3
    within = _subscribe(e2e, "user_grace")
    ended = int(time.time()) - 3600
    e2e.localstripe.advance_subscription(
        within["stripe_subscription_id"], ended_at=ended, payment_method=DECLINED
    )
    e2e.wait_settled()
    assert _get(e2e, "user_grace", within["id"])["status"] == "past_due"
    access = _access(e2e, "user_grace")
    assert access["has_access"] is True
    assert access["expires_at"] == (_stamp(ended) + timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert "subscription.payment_failed" in _events(within["id"])

    over = _subscribe(e2e, "user_late")
    ended = int(time.time()) - 4 * 24 * 3600
    e2e.localstripe.advance_subscription(
        over["stripe_subscription_id"], ended_at=ended, payment_method=DECLINED
    )
    e2e.wait_settled()
    assert _access(e2e, "user_late")["has_access"] is False  # the grace is over

    invoice_id = _stripe_sub(e2e, over).latest_invoice
    _client(e2e).v1.invoices.pay(invoice_id, params={"payment_method": "pm_card_visa"})
    e2e.wait_settled()
    recovered = _get(e2e, "user_late", over["id"])
    assert recovered["status"] == "active"
    period_end = _stamp(_stripe_sub(e2e, over)["items"].data[0].current_period_end)
    access = _access(e2e, "user_late")
    assert (access["has_access"], access["expires_at"]) == (
        True,
        period_end.isoformat().replace("+00:00", "Z"),
    )
    assert Payment.objects.filter(customer_id="user_late", status="completed").count() == 2


def test_the_billing_portal_page_cancels_at_the_period_end(stripe_e2e):
    e2e = stripe_e2e
    subscription = _subscribe(e2e, "user_portal")
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
    wait_for(lambda: _get(e2e, "user_portal", subscription["id"])["cancel_at_period_end"], what="cancel seen")
    nobody = e2e.api("user_without").post(
        e2e.url("/api/v1/billing-portal/sessions/"), json={"return_url": "https://app.example/account"}
    )
    assert nobody.status_code == 404


def test_every_event_twice_and_newest_first_gives_the_same_end_state(stripe_e2e):
    """Changes made on Stripe's side (dashboard, portal): only webhooks tell us. Held back, then
    delivered newest first, each twice."""
    e2e = stripe_e2e
    subscription = _subscribe(e2e, "user_storm")
    client = _client(e2e)
    sub_id = subscription["stripe_subscription_id"]
    before = {e["id"] for e in e2e.localstripe.events()}
    e2e.localstripe.set_delivery(paused=True)
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
    held = [e for e in e2e.localstripe.events() if e["id"] not in before]  # newest first
    assert {e["type"] for e in held} >= {
        "customer.subscription.updated",
        "invoice.payment_failed",
        "invoice.paid",
    }
    for event in held:
        for _ in range(2):
            e2e.localstripe.deliver_event(event["id"])
    e2e.localstripe.set_delivery(paused=False)
    e2e.wait_settled()

    stripe_sub = client.v1.subscriptions.retrieve(sub_id)
    period_end = _stamp(stripe_sub["items"].data[0].current_period_end)
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
    subscription = _subscribe(e2e, "user_storm_end")
    sub_id = subscription["stripe_subscription_id"]
    before = {e["id"] for e in e2e.localstripe.events()}
    e2e.localstripe.set_delivery(paused=True)
    _client(e2e).v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})  # e.g. the portal
    e2e.localstripe.advance_subscription(sub_id)
    held = [e for e in e2e.localstripe.events() if e["id"] not in before]
    assert [e["type"] for e in held] == ["customer.subscription.deleted", "customer.subscription.updated"]
    for event in held:
        for _ in range(2):
            e2e.localstripe.deliver_event(event["id"])
    e2e.localstripe.set_delivery(paused=False)
    e2e.wait_settled()

    ours = Subscription.objects.get(stripe_subscription_id=sub_id)
    assert (ours.status, ours.cancel_at_period_end) == ("canceled", True)
    assert not Entitlement.objects.filter(subscription_id=sub_id, status="active").exists()
    assert _access(e2e, "user_storm_end")["has_access"] is False
    assert _events(subscription["id"]) == ["subscription.updated", "subscription.canceled"]  # one per change
