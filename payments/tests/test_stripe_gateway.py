"""payments/gateway.py against localstripe: shapes, idempotency keys, error mapping."""

import copy
import json
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from payments.stripe import gateway

OBJECTS = json.loads((Path(__file__).parents[2] / "testsupport" / "stripe_objects.json").read_text())


def _create(checkout_session_id=None, **overrides):
    params = {
        "checkout_session_id": checkout_session_id or uuid.uuid4(),
        "billing_cycle": "one_time",
        "amount": 29999,
        "currency": "USD",
        "product_name": "Lifetime",
        "success_url": "https://app.example/ok",
        "cancel_url": "https://app.example/cancel",
        "metadata": {"user_id": "u1", "plan_id": "lifetime", "zone": "A"},
        **overrides,
    }
    return gateway.checkout_session_create(**params)


def test_one_time_plan_is_a_payment_mode_session_with_inline_price(localstripe):
    our_id = uuid.uuid4()
    session = _create(our_id)
    assert isinstance(session, dict)
    assert (session["mode"], session["amount_total"], session["currency"]) == ("payment", 29999, "usd")
    assert session["client_reference_id"] == str(our_id)
    assert session["metadata"] == {"user_id": "u1", "plan_id": "lifetime", "zone": "A"}
    line = localstripe.get(f"/v1/checkout/sessions/{session['id']}/line_items")["data"][0]
    assert (line["price"]["unit_amount"], line["price"]["type"], line["description"]) == (
        29999,
        "one_time",
        "Lifetime",
    )


@pytest.mark.parametrize(("cycle", "interval"), [("monthly", "month"), ("yearly", "year")])
def test_recurring_plans_are_subscription_sessions(localstripe, cycle, interval):
    session = _create(billing_cycle=cycle, amount=400)
    assert session["mode"] == "subscription"
    line = localstripe.get(f"/v1/checkout/sessions/{session['id']}/line_items")["data"][0]
    assert line["price"]["recurring"]["interval"] == interval


def test_the_idempotency_key_is_our_row_id_so_a_retry_creates_nothing_new():
    our_id = uuid.uuid4()
    assert _create(our_id)["id"] == _create(our_id)["id"]
    assert _create(uuid.uuid4())["id"] != _create(our_id)["id"]


def test_reusing_a_row_id_with_other_parameters_is_refused():
    our_id = uuid.uuid4()
    _create(our_id)
    with pytest.raises(gateway.StripeRejected) as info:
        _create(our_id, amount=100)
    assert info.value.stripe_code == "idempotency_error"


def test_a_request_stripe_refuses_is_stripe_rejected_with_its_code():
    with pytest.raises(gateway.StripeRejected) as info:
        _create(amount=49)
    assert (info.value.status, info.value.code, info.value.stripe_code) == (
        422,
        "stripe_rejected",
        "amount_too_small",
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (402, gateway.CardDeclined),
        (500, gateway.StripeUnavailable),
        (429, gateway.StripeUnavailable),
    ],
)
def test_sdk_errors_become_domain_errors(localstripe, status, error):
    session = _create()
    localstripe.fail_next("GET", f"/v1/checkout/sessions/{session['id']}", status=status)
    with pytest.raises(error):
        gateway.checkout_session_retrieve(session["id"])
    assert gateway.checkout_session_retrieve(session["id"])["id"] == session["id"]


def test_unreachable_stripe_is_unavailable_503():
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9", STRIPE_MAX_NETWORK_RETRIES=0):
        with pytest.raises(gateway.StripeUnavailable) as info:
            gateway.account_retrieve()
    assert (info.value.status, info.value.code) == (503, "stripe_unavailable")


def test_wrong_api_key_is_unavailable_not_a_client_error():
    with override_settings(STRIPE_SECRET="not-a-key"), pytest.raises(gateway.StripeUnavailable):
        gateway.account_retrieve()


def test_payment_intent_and_refunds(localstripe):
    payment_id = uuid.uuid4()
    intent = gateway.payment_intent_create(
        payment_id=payment_id, amount=2000, currency="EUR", description="order 7", metadata={"order_id": "7"}
    )
    assert intent["metadata"] == {"order_id": "7", "payment_id": str(payment_id)}
    again = gateway.payment_intent_create(
        payment_id=payment_id, amount=2000, currency="EUR", description="order 7", metadata={"order_id": "7"}
    )
    assert again["id"] == intent["id"]
    localstripe.post(f"/v1/payment_intents/{intent['id']}", {"payment_method": "pm_card_visa"})
    localstripe.post(f"/v1/payment_intents/{intent['id']}/confirm")
    assert gateway.payment_intent_retrieve(intent["id"])["status"] == "succeeded"

    refund_id = uuid.uuid4()
    refund = gateway.refund_create(
        refund_id=refund_id, payment_intent_id=intent["id"], amount=500, reason="requested_by_customer"
    )
    assert (refund["amount"], refund["reason"], refund["metadata"]["refund_id"]) == (
        500,
        "requested_by_customer",
        str(refund_id),
    )
    same = gateway.refund_create(
        refund_id=refund_id, payment_intent_id=intent["id"], amount=500, reason="requested_by_customer"
    )
    assert same["id"] == refund["id"]
    free_text = gateway.refund_create(
        refund_id=uuid.uuid4(), payment_intent_id=intent["id"], amount=100, reason="app crashed"
    )
    assert (free_text["reason"], free_text["metadata"]["reason"]) == (None, "app crashed")
    assert sorted(r["amount"] for r in gateway.refunds_list(intent["id"])) == [100, 500]


def test_events_since_pages_through_every_event(localstripe):
    ids = [_create()["id"] for _ in range(3)]
    for session_id in ids:
        gateway.checkout_session_expire(session_id)
    events = list(gateway.events_since(created_gte=0, types=["checkout.session.expired"]))
    assert {e["data"]["object"]["id"] for e in events} >= set(ids)
    assert all(e["type"] == "checkout.session.expired" for e in events)


def test_period_end_and_payment_intent_read_both_api_shapes():
    subscription = copy.deepcopy(OBJECTS["subscription"])
    subscription["items"]["data"][0]["current_period_end"] = 1_800_000_000
    assert gateway.subscription_period_end(subscription) == 1_800_000_000
    assert gateway.subscription_period_end({"items": {"data": []}, "current_period_end": 17}) == 17

    invoice = copy.deepcopy(OBJECTS["invoice"])
    assert gateway.invoice_payment_intent_id(invoice) == ""
    invoice["payments"] = {"data": [{"status": "paid", "payment": {"payment_intent": "pi_new"}}]}
    assert gateway.invoice_payment_intent_id(invoice) == "pi_new"
    assert gateway.invoice_payment_intent_id({"payment_intent": "pi_old"}) == "pi_old"
