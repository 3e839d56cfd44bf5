"""What an end-to-end test drives (`stripe_e2e` fixture, conftest.py): the live server's API,
localstripe, the webhook URL, and the few steps many of those tests take."""

from collections.abc import Callable
from datetime import UTC, datetime

import requests
import stripe

from jia_payments.core.api.auth import Principal
from payments.checkout import checkout_session_create
from payments.models import CheckoutSession, Payment, StripeEvent
from testsupport.localstripe import API_KEY
from testsupport.waiting import wait_for

BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}
PREMIUM_FEATURES = 9  # the features premium_monthly and lifetime have in fixtures/catalog


def stamp(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, tz=UTC)


class StripeE2E:
    def __init__(self, *, base_url: str, webhook_url: str, localstripe, token_issuer, worker):
        self.base_url = base_url
        self.webhook_url = webhook_url
        self.localstripe = localstripe
        self.token_issuer = token_issuer
        self.worker = worker

    def api(self, user_id: str, role: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers["better-auth-token"] = self.token_issuer.token(user_id, role=role)
        return session

    def url(self, path: str) -> str:
        return self.base_url + path

    def stripe(self) -> stripe.StripeClient:
        """The SDK as a test (or Stripe's dashboard) uses it against localstripe."""
        return stripe.StripeClient(API_KEY, base_addresses={"api": self.localstripe.url})

    def post_webhook(self, body: bytes, headers: dict) -> requests.Response:
        return requests.post(self.webhook_url, data=body, headers=headers, timeout=30)

    def stripe_event(self, event_type: str, object_id: str) -> dict:
        """The event Stripe (localstripe) made of `event_type` about `object_id`."""
        events = self.localstripe.events(type=event_type)
        matching = [e for e in events if e["data"]["object"]["id"] == object_id]
        assert len(matching) == 1, (event_type, object_id, len(matching))
        return matching[0]

    def wait_processed(self, *event_ids: str) -> None:
        wait_for(
            lambda: (
                StripeEvent.objects.filter(pk__in=event_ids, status=StripeEvent.Status.PROCESSED).count()
                == len(set(event_ids))
            ),
            what=f"events {event_ids} processed",
        )

    def wait_settled(self) -> None:
        """No webhook in flight and no stored event waiting for the worker."""
        wait_for(lambda: self.localstripe.deliveries_in_flight() == 0, what="webhooks delivered")
        wait_for(
            lambda: not StripeEvent.objects.filter(status=StripeEvent.Status.PENDING).exists(),
            what="stripe events processed",
        )

    def delivered_twice_newest_first(self, act: Callable[[], None]) -> list[dict]:
        """Run `act` with webhooks held back, then deliver every event it made newest first, each
        twice, and wait until all are processed; answers the events (newest first). What the
        app does must not depend on Stripe's order or on duplicates."""
        before = {e["id"] for e in self.localstripe.events()}
        self.localstripe.set_delivery(paused=True)
        try:
            act()
            held = [e for e in self.localstripe.events() if e["id"] not in before]  # newest first
            for event in held:
                for _ in range(2):
                    self.localstripe.deliver_event(event["id"])
        finally:
            self.localstripe.set_delivery(paused=False)
        self.wait_settled()
        return held

    def buy(self, plan_id: str, user_id: str, country: str = "US") -> CheckoutSession:
        """An open checkout, as the end user `user_id` asks for it (the service, in process)."""
        return checkout_session_create(
            principal=Principal(user_id=user_id, role=Principal.USER),
            plan_id=plan_id,
            country=country,
            **BODY,
        )

    def paused_checkouts(
        self, count: int, plan_id: str = "premium_monthly"
    ) -> list[tuple[CheckoutSession, dict]]:
        """`count` paid checkouts whose `checkout.session.completed` Stripe has made but not sent."""
        self.localstripe.set_delivery(paused=True)
        try:
            sessions = [self.buy(plan_id, f"user_{n}") for n in range(count)]
            for session in sessions:
                self.localstripe.complete_checkout_session(session.stripe_session_id)
            completed = {
                e["data"]["object"]["id"]: e
                for e in self.localstripe.events(type="checkout.session.completed")
            }
            while len(completed) < count:  # localstripe lists 100 a page
                page = self.localstripe.get(
                    "/v1/events",
                    type="checkout.session.completed",
                    limit=100,
                    starting_after=list(completed.values())[-1]["id"],
                )["data"]
                completed.update({e["data"]["object"]["id"]: e for e in page})
            return [(session, completed[session.stripe_session_id]) for session in sessions]
        finally:
            self.localstripe.set_delivery(paused=False)

    def paid_checkout(self, plan_id: str = "premium_monthly", user_id: str = "user_sub") -> CheckoutSession:
        session = self.buy(plan_id, user_id)
        self.localstripe.complete_checkout_session(session.stripe_session_id)
        self.wait_processed(self.stripe_event("checkout.session.completed", session.stripe_session_id)["id"])
        self.wait_settled()
        session.refresh_from_db()
        return session

    def pending_card_payment(self, amount: int = 2500) -> tuple[Payment, str]:
        """A card payment made through the API, as a client app would: pending, with its intent."""
        body = {
            "amount": amount,
            "currency": "USD",
            "payment_method": "credit_card",
            "customer_id": "user_pi",
        }
        created = self.api("user_pi").post(self.url("/api/v1/payments/"), json=body)
        assert created.status_code == 201, created.text
        return Payment.objects.get(pk=created.json()["id"]), created.json()["external_payment_id"]

    def confirm(self, intent_id: str, card: str) -> None:
        client = self.stripe()
        client.v1.payment_intents.update(intent_id, params={"payment_method": card})
        try:
            client.v1.payment_intents.confirm(intent_id)
        except stripe.CardError:
            pass  # the customer sees the decline; Stripe sends payment_intent.payment_failed

    def check(self, user_id: str, feature_code: str = "ai_assistant") -> dict:
        """GET /api/v1/entitlements/check/ as the user, over HTTP; times parsed."""
        response = self.api(user_id).get(
            self.url("/api/v1/entitlements/check/"), params={"feature_code": feature_code}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        if answer["expires_at"]:
            answer["expires_at"] = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
        return answer
