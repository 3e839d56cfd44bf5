"""The Stripe webhook inbox end to end (payments/stripe/webhooks.py, events.py): localstripe signs
and POSTs over HTTP to the live server, dj-stripe verifies, a real Celery worker on Redis
processes; each event once, whatever the duplicates, forgeries, failures or lost deliveries."""

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.models import CheckoutSession, Payment, StripeEvent
from payments.tasks import reconcile_stripe_events
from payments.tests.stripe_e2e import PREMIUM_FEATURES
from testsupport.localstripe import WEBHOOK_SECRET, signature_header
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_duplicate_storm_has_exactly_one_effect_per_event(stripe_e2e):
    """200 events, each delivered twice, shuffled, by 8 concurrent senders: 200 effects."""
    pairs = stripe_e2e.paused_checkouts(200)
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
    [(_, event)] = stripe_e2e.paused_checkouts(1)
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
    [(session, event)] = stripe_e2e.paused_checkouts(1)
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
    [(session, event)] = stripe_e2e.paused_checkouts(1)
    # the handler re-reads the session from Stripe: make that call fail once (Stripe's 500)
    stripe_e2e.localstripe.fail_next("GET", f"/v1/checkout/sessions/{session.stripe_session_id}")
    assert stripe_e2e.localstripe.deliver_event(event["id"])[0]["status"] == 200

    stripe_e2e.wait_processed(event["id"])
    stored = StripeEvent.objects.get(pk=event["id"])
    assert (stored.status, stored.attempts, stored.last_error) == ("processed", 2, "")
    assert Payment.objects.count() == 1
    assert Entitlement.objects.filter(user_id=session.user_id).count() == PREMIUM_FEATURES


def test_a_handler_failing_every_try_is_failed_in_admin_and_reprocess_runs_it_again(stripe_e2e, admin_client):
    [(session, event)] = stripe_e2e.paused_checkouts(1)
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
    [(session, event)] = stripe_e2e.paused_checkouts(1)
    assert not StripeEvent.objects.exists()

    result = reconcile_stripe_events()  # beat's task, here; the events it finds go to the worker

    # the checkout's events of handled types: the session, its subscription, invoice, intent
    assert result == {"received": 4, "requeued": 0, "refunds_settled": 0, "duplicates_settled": 0}
    stripe_e2e.wait_processed(event["id"])
    assert StripeEvent.objects.get(pk=event["id"]).source == "reconciliation"
    session.refresh_from_db()
    assert session.status == "complete"


def _worker_lines(worker) -> list[dict]:
    lines = []
    for raw in list(worker.lines):
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def test_the_worker_s_lines_of_an_event_name_it_and_the_webhook_call_it_came_in(stripe_e2e):
    [(_, event)] = stripe_e2e.paused_checkouts(1)
    body = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(body, WEBHOOK_SECRET, int(time.time())),
        "X-Request-ID": f"req-webhook-{event['id']}",
    }
    assert stripe_e2e.post_webhook(body, headers).status_code == 200
    stripe_e2e.wait_processed(event["id"])
    (traced,) = wait_for(
        lambda: [
            line
            for line in _worker_lines(stripe_e2e.worker)
            if line.get("logger") == "celery.app.trace" and event["id"] in str(line.get("data"))
        ],
        what="the worker's line of the event's task",
    )
    assert {key: traced.get(key) for key in ("request_id", "stripe_event_id", "stripe_event_type")} == {
        "request_id": f"req-webhook-{event['id']}",
        "stripe_event_id": event["id"],
        "stripe_event_type": "checkout.session.completed",
    }
