"""The extended localstripe answers every call the product makes, through the real stripe SDK.

No Django here: this checks the harness itself (shapes, errors, signed webhooks), so that a
failing product test can be trusted to be about the product. (`localstripe`: root conftest.)
"""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

from testsupport.localstripe import API_KEY, WEBHOOK_SECRET, signature_header


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def client(localstripe):
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe.url}, max_network_retries=0)


@pytest.fixture
def webhooks(localstripe):
    """Signed webhooks from the fake, verified with the SDK as the product verifies them."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    localstripe.set_delivery(delay=0)
    localstripe.configure_webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", name="harness")

    seen: list[stripe.Event] = []

    def wait_for(event_type: str, match=lambda obj: True, timeout: float = 10) -> stripe.Event:
        """The first event received of `event_type` whose object `match`es (deliveries run
        concurrently, so their order is not the order the events were made in)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in seen:
                if event.type == event_type and match(event.data.object):
                    return event
            headers, body = server.received.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append(stripe.Webhook.construct_event(body, headers["Stripe-Signature"], WEBHOOK_SECRET))

    yield wait_for
    localstripe.configure_webhook(
        f"http://127.0.0.1:{server.server_address[1]}/hook", name="harness", events=[]
    )
    server.shutdown()


def _checkout_params(mode="payment", amount=1200, currency="usd", **extra):
    recurring = {"recurring": {"interval": "month"}} if mode == "subscription" else {}
    return {
        "mode": mode,
        "line_items": [{
            "quantity": 1,
            "price_data": {"currency": currency, "unit_amount": amount,
                           "product_data": {"name": "Family monthly"}, **recurring},
        }],
        "success_url": "https://app.example/ok?cs={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example/cancel",
        "client_reference_id": "our-session-id",
        "metadata": {"user_id": "u1", "plan_id": "family-monthly", "zone": "C"},
        **extra,
    }  # fmt: skip


def test_account_is_stripes_example_shape(client):
    account = client.v1.accounts.retrieve_current()
    assert account.object == "account"
    assert account.id.startswith("acct_")
    assert account.charges_enabled is True


def test_payment_checkout_completes_with_a_signed_event(client, localstripe, webhooks):
    session = client.v1.checkout.sessions.create(
        params=_checkout_params(payment_intent_data={"metadata": {"payment_id": "p1"}}),
        options={"idempotency_key": "checkout-1"},
    )
    assert isinstance(session, stripe.checkout.Session)
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_total, session.currency) == (1200, "usd")
    assert session.client_reference_id == "our-session-id"
    assert session.url.startswith(localstripe.url + "/checkout/pay/cs_test_")
    assert session.payment_intent is None

    localstripe.complete_checkout_session(session.id)
    completed = webhooks("checkout.session.completed", lambda s: s.id == session.id).data.object
    assert (completed.status, completed.payment_status) == ("complete", "paid")
    assert completed.metadata.to_dict() == {
        "user_id": "u1",
        "plan_id": "family-monthly",
        "zone": "C",
    }
    pi = client.v1.payment_intents.retrieve(completed.payment_intent)
    assert (pi.status, pi.amount, pi.currency) == ("succeeded", 1200, "usd")
    assert pi.metadata.to_dict() == {"payment_id": "p1"}

    again = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert again.status == "complete"
    assert again.line_items.data[0].amount_total == 1200
    listed = client.v1.checkout.sessions.list(params={"payment_intent": pi.id})
    assert [s.id for s in listed.data] == [session.id]


def test_idempotency_key_replays_the_first_answer_and_refuses_other_parameters(client):
    first = client.v1.checkout.sessions.create(params=_checkout_params(), options={"idempotency_key": "k-2"})
    second = client.v1.checkout.sessions.create(params=_checkout_params(), options={"idempotency_key": "k-2"})
    assert second.id == first.id
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=_checkout_params(amount=1300), options={"idempotency_key": "k-2"}
        )


def test_checkout_below_the_minimum_charge_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=_checkout_params(amount=49))
    assert info.value.code == "amount_too_small"
    assert client.v1.checkout.sessions.create(params=_checkout_params(amount=50)).amount_total == 50


def test_checkout_mode_must_match_the_price_kind(client):
    params = _checkout_params()
    params["mode"] = "subscription"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(params=params)


def test_expire_sends_checkout_session_expired(client, webhooks):
    session = client.v1.checkout.sessions.create(params=_checkout_params())
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert webhooks("checkout.session.expired", lambda s: s.id == session.id).data.object.url is None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)


def test_declined_card_leaves_the_session_open(client, localstripe):
    session = client.v1.checkout.sessions.create(params=_checkout_params())
    with pytest.raises(requests.HTTPError) as info:
        localstripe.complete_checkout_session(session.id, payment_method="pm_card_chargeCustomerFail")
    assert info.value.response.status_code == 402
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_subscription_checkout_renewal_and_cancel(client, localstripe, webhooks):
    session = client.v1.checkout.sessions.create(
        params=_checkout_params("subscription", subscription_data={"metadata": {"checkout": "s1"}})
    )
    localstripe.complete_checkout_session(session.id)
    completed = webhooks("checkout.session.completed", lambda s: s.id == session.id).data.object
    assert completed.mode == "subscription" and completed.subscription.startswith("sub_")

    sub = client.v1.subscriptions.retrieve(completed.subscription)
    item = sub["items"].data[0]
    assert (sub.status, sub.metadata.to_dict()) == ("active", {"checkout": "s1"})
    assert (item.price.unit_amount, item.price.recurring.interval) == (1200, "month")
    first_end = item.current_period_end
    assert 28 * 86400 <= first_end - item.current_period_start <= 31 * 86400

    invoice = client.v1.invoices.retrieve(completed.invoice, params={"expand": ["payments"]})
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        1200,
        "subscription_create",
    )
    assert invoice.parent.subscription_details.subscription == sub.id
    pi_id = invoice.payments.data[0].payment.payment_intent
    assert client.v1.payment_intents.retrieve(pi_id).status == "succeeded"

    assert webhooks("invoice.paid", lambda i: i.id == invoice.id).data.object.amount_paid == 1200

    localstripe.renew_subscription(sub.id)
    paid = webhooks("invoice.paid", lambda i: i.billing_reason == "subscription_cycle").data.object
    assert (paid.subscription, paid.period_start) == (sub.id, first_end)
    updated = webhooks("customer.subscription.updated", lambda s: s.id == sub.id)
    assert updated.data.object["items"].data[0].current_period_start == first_end
    assert "items" in updated.data.previous_attributes

    at_end = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert at_end.cancel_at_period_end is True
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert (
        webhooks("customer.subscription.deleted", lambda s: s.id == sub.id).data.object.status == "canceled"
    )


def test_payment_intent_confirm_fail_and_refunds(client, localstripe, webhooks):
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "metadata": {"payment_id": "p9"},
            "description": "order 9",
        },
        options={"idempotency_key": "payment-p9"},
    )
    assert (pi.status, pi.description) == ("requires_payment_method", "order 9")
    client.v1.payment_intents.update(pi.id, params={"payment_method": "pm_card_visa"})
    confirmed = client.v1.payment_intents.confirm(pi.id)
    assert confirmed.status == "succeeded"
    assert (
        webhooks("payment_intent.succeeded", lambda p: p.id == pi.id).data.object.metadata.payment_id == "p9"
    )

    partial = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 500, "reason": "requested_by_customer"}
    )
    assert (partial.status, partial.amount, partial.payment_intent, partial.reason) == (
        "succeeded",
        500,
        pi.id,
        "requested_by_customer",
    )
    charge = webhooks("charge.refunded", lambda c: c.payment_intent == pi.id).data.object
    assert (charge.amount_refunded, charge.refunded, charge.payment_intent) == (500, False, pi.id)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1501})
    assert too_much.value.code == "amount_too_large"
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 1500
    assert (
        webhooks(
            "charge.refunded", lambda c: c.payment_intent == pi.id and c.refunded
        ).data.object.amount_refunded
        == 2000
    )
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": pi.id})
    assert again.value.code == "charge_already_refunded"

    declined = client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    client.v1.payment_intents.update(declined.id, params={"payment_method": "pm_card_chargeCustomerFail"})
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.confirm(declined.id)
    failed = webhooks("payment_intent.payment_failed", lambda p: p.id == declined.id).data.object
    assert failed.last_payment_error.code == "card_declined"
    client.v1.payment_intents.update(declined.id, params={"payment_method": "pm_card_visa"})
    assert client.v1.payment_intents.confirm(declined.id).status == "succeeded"  # another card
    canceled = client.v1.payment_intents.cancel(
        client.v1.payment_intents.create(params={"amount": 900, "currency": "eur"}).id
    )
    assert canceled.status == "canceled"


def test_prices(client):
    price = client.v1.prices.create(params={
        "currency": "usd", "unit_amount": 999, "recurring": {"interval": "year"},
        "product_data": {"name": "Yearly"}, "lookup_key": "yearly",
    })  # fmt: skip
    assert (price.type, price.unit_amount, price.recurring.interval) == ("recurring", 999, "year")
    assert client.v1.prices.retrieve(price.id).product.startswith("prod_")
    assert price.id in [p.id for p in client.v1.prices.list().data]
    assert client.v1.prices.update(price.id, params={"active": False}).active is False


def test_events_are_listed_newest_first_and_page(client, localstripe):
    since = int(time.time()) - 1
    localstripe.set_delivery(paused=True)
    try:
        created = [client.v1.checkout.sessions.create(params=_checkout_params()) for _ in range(3)]
        ids = [client.v1.checkout.sessions.expire(session.id).id for session in created]
    finally:
        localstripe.set_delivery(paused=False)
    listed = client.v1.events.list(
        params={"created": {"gte": since}, "types": ["checkout.session.expired"], "limit": 2}
    )
    assert len(listed.data) == 2 and listed.has_more
    every = [e.data.object.id for e in listed.auto_paging_iter()]
    assert every[:3] == ids[::-1]
    assert client.v1.events.retrieve(listed.data[0].id).type == "checkout.session.expired"


def test_deliver_now_reports_each_endpoint_status(client, localstripe, webhooks):
    session = client.v1.checkout.sessions.create(params=_checkout_params())
    client.v1.checkout.sessions.expire(session.id)
    event = webhooks("checkout.session.expired", lambda s: s.id == session.id)
    old = int(time.time()) - 10
    results = localstripe.deliver_event(event.id, timestamp=old)
    assert [r["status"] for r in results] == [200]


def test_signature_header_matches_the_sdk():
    payload = json.dumps({"id": "evt_1", "object": "event"}).encode()
    header = signature_header(payload, WEBHOOK_SECRET)
    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET).id == "evt_1"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", header, WEBHOOK_SECRET)


def test_hosted_page_pays_and_redirects(client, localstripe):
    session = client.v1.checkout.sessions.create(params=_checkout_params())
    page = requests.get(session.url, timeout=10)
    assert page.status_code == 200 and "Pay" in page.text
    paid = requests.post(session.url, data={"email": "a@b.example"}, allow_redirects=False, timeout=10)
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"https://app.example/ok?cs={session.id}"
    assert client.v1.checkout.sessions.retrieve(session.id).customer_details.email == "a@b.example"


def test_a_fault_fails_the_next_call_only(client, localstripe):
    session = client.v1.checkout.sessions.create(params=_checkout_params())
    localstripe.fail_next("GET", f"/v1/checkout/sessions/{session.id}")
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.retrieve(session.id)
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


def test_a_restarted_fake_with_a_store_keeps_its_customers_and_payments(tmp_path):
    """`make run` keeps the fake's objects in var/ beside the database that refers to them."""
    from testsupport.localstripe import LocalStripe

    store = tmp_path / "localstripe.pickle"
    with LocalStripe(store_path=store) as first:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": first.url}, max_network_retries=0)
        customer = client.v1.customers.create(params={"email": "returning@example.com"})
        session = client.v1.checkout.sessions.create(params=_checkout_params(customer=customer.id))
        paid = first.complete_checkout_session(session.id)
    with LocalStripe(store_path=store) as second:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": second.url}, max_network_retries=0)
        assert client.v1.customers.retrieve(customer.id).email == "returning@example.com"
        again = client.v1.checkout.sessions.create(params=_checkout_params(customer=customer.id))
        assert (again.customer, again.status) == (customer.id, "open")
        refund = client.v1.refunds.create(params={"payment_intent": paid["payment_intent"]})
        assert (refund.status, refund.amount) == ("succeeded", 1200)
    with LocalStripe() as forgetting:  # the control: without the store a new fake knows nothing
        client = stripe.StripeClient(API_KEY, base_addresses={"api": forgetting.url}, max_network_retries=0)
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.customers.retrieve(customer.id)
