"""The steps subscription end-to-end tests take over the API and on the fake Stripe."""

from datetime import UTC, datetime

import requests
import stripe

from jia_payments.core.models import OutboxEvent
from testsupport.localstripe import API_KEY

BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}
DECLINED = "pm_card_chargeCustomerFail"  # a card that attaches, then declines charges


def stripe_client(e2e) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": e2e.localstripe.url})


def stamp(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, tz=UTC)


def subscribe(e2e, user_id: str, plan_id: str = "premium_monthly") -> dict:
    """Checkout over the API, paid on the fake Stripe; answers our subscription over the API."""
    created = e2e.api(user_id).post(e2e.url("/api/v1/checkout/sessions/"), json={**BODY, "plan_id": plan_id})
    assert created.status_code == 201, created.text
    e2e.localstripe.complete_checkout_session(created.json()["stripe_session_id"])
    e2e.wait_settled()
    [subscription] = subscriptions_of(e2e, user_id)
    return subscription


def subscriptions_of(e2e, user_id: str) -> list[dict]:
    listed = e2e.api(user_id).get(e2e.url("/api/v1/subscriptions/"), params={"user_id": user_id})
    assert listed.status_code == 200, listed.text
    return listed.json()["results"]


def subscription_get(e2e, user_id: str, subscription_id: str) -> dict:
    answer = e2e.api(user_id).get(e2e.url(f"/api/v1/subscriptions/{subscription_id}/"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def subscription_post(
    e2e, user_id: str, subscription_id: str, action: str, body: dict | None = None
) -> requests.Response:
    return e2e.api(user_id).post(
        e2e.url(f"/api/v1/subscriptions/{subscription_id}/{action}/"), json=body or {}
    )


def access_of(e2e, user_id: str, feature_code: str = "ai_assistant") -> dict:
    answer = e2e.api(user_id).get(
        e2e.url("/api/v1/entitlements/check/"), params={"feature_code": feature_code}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def subscription_events(subscription_id: str) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_id=subscription_id, type__startswith="subscription.")
        .order_by("created_at", "id")
        .values_list("type", flat=True)
    )


def stripe_subscription(e2e, subscription: dict):
    return stripe_client(e2e).v1.subscriptions.retrieve(subscription["stripe_subscription_id"])
