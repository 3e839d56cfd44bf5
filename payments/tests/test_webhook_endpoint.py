"""`manage.py stripe_webhook_endpoint`: dj-stripe's endpoint row from settings, idempotently."""

import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from payments.models import StripeEvent
from payments.stripe.handlers import HANDLERS
from payments.tests.factories import StripeEventPayloadFactory

pytestmark = pytest.mark.django_db


def test_creates_the_endpoint_from_settings_and_running_again_changes_nothing(capsys):
    with override_settings(STRIPE_WEBHOOK_SECRET="whsec_one", STRIPE_WEBHOOK_UUID=""):
        call_command("stripe_webhook_endpoint", "--base-url", "https://pay.example/")
        call_command("stripe_webhook_endpoint")
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.djstripe_uuid == uuid.uuid5(
        uuid.UUID("5b0a6c8e-2f53-4d6e-9a57-7d1c3b1f0e42"), "whsec_one"
    )
    assert (endpoint.secret, endpoint.djstripe_tolerance, endpoint.livemode) == ("whsec_one", 300, False)
    assert endpoint.url == f"https://pay.example/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.enabled_events == sorted(HANDLERS)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("created webhook endpoint we_jia_") and out[1].startswith("updated")


def test_a_new_secret_is_taken_and_a_configured_uuid_wins():
    configured = "0f8fad5b-d9cb-469f-a165-70867728950e"
    with override_settings(STRIPE_WEBHOOK_SECRET="whsec_two", STRIPE_WEBHOOK_UUID=configured):
        call_command("stripe_webhook_endpoint")
    with override_settings(STRIPE_WEBHOOK_SECRET="whsec_three", STRIPE_WEBHOOK_UUID=configured):
        call_command("stripe_webhook_endpoint")
    endpoint = WebhookEndpoint.objects.get()
    assert (str(endpoint.djstripe_uuid), endpoint.secret) == (configured, "whsec_three")


def test_without_a_secret_the_command_fails_and_says_what_to_set():
    with (
        override_settings(STRIPE_WEBHOOK_SECRET=""),
        pytest.raises(CommandError, match="STRIPE_WEBHOOK_SECRET"),
    ):
        call_command("stripe_webhook_endpoint")
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_endpoint_uuid_is_404_and_stores_nothing(client):
    response = client.post(
        f"/stripe/webhook/{uuid.uuid4()}/",
        b"{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=x",
    )
    assert response.status_code == 404


# --- Stripe's calls are not rate-limited per IP, but their size is bounded ---------------------

SECRET = "whsec_testsuite0123456789abcdefghijkl"


def signed_post(client, endpoint, body: bytes, **extra):
    from testsupport.localstripe import signature_header

    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(body, SECRET),
        **extra,
    )


def stripe_event(event_id: str) -> bytes:
    return json.dumps(StripeEventPayloadFactory(id=event_id)).encode()


@pytest.fixture
def endpoint(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    call_command("stripe_webhook_endpoint")
    return WebhookEndpoint.objects.get()


def test_stripe_is_not_throttled_per_ip(client, endpoint, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon": "2/min"},
    }
    statuses = [
        signed_post(
            client, endpoint, stripe_event(f"evt_ratelimit_{n}"), REMOTE_ADDR="54.187.174.169"
        ).status_code
        for n in range(6)
    ]
    assert statuses == [200] * 6
    assert StripeEvent.objects.count() == 6


def test_a_body_over_the_size_bound_is_refused_and_stores_nothing(client, endpoint, settings):
    body = (
        stripe_event("evt_too_big")[:-1] + b', "pad": "' + b"a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'
    )
    response = signed_post(client, endpoint, body)
    assert response.status_code in (400, 413)
    assert response["Content-Type"] == "application/problem+json"
    assert not StripeEvent.objects.exists()
    # dj-stripe records every call it gets; this one as invalid, without the body it refused to read.
    assert all(
        not trigger.valid and not trigger.processed and len(trigger.body) < 1024
        for trigger in WebhookEventTrigger.objects.all()
    )


def test_a_redelivered_event_is_acknowledged_the_same_and_stored_once(client, endpoint):
    body = stripe_event("evt_redelivered")
    first, second = signed_post(client, endpoint, body), signed_post(client, endpoint, body)
    for response in (first, second):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"received": True, "event_id": "evt_redelivered"}
    assert list(StripeEvent.objects.values_list("pk", "attempts")) == [("evt_redelivered", 0)]


# --- One log line per call ---------------------------------------------------------------------


@pytest.fixture
def tasks_to_the_broker():
    """Tasks are published to the broker, as in production (the suite runs them eagerly), and
    dropped from it after the test."""
    from jia_payments.celery import app

    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    yield
    app.conf.task_always_eager = eager
    app.control.purge()


@pytest.mark.django_db(transaction=True)  # the task is enqueued at the commit, inside the request
def test_a_webhook_call_writes_one_line_naming_the_event(client, endpoint, tasks_to_the_broker):
    from testsupport.logcapture import capture_logs

    body = json.dumps(StripeEventPayloadFactory(id="evt_one_line", type="payment_intent.succeeded")).encode()
    with capture_logs() as logs:
        first, again = signed_post(client, endpoint, body), signed_post(client, endpoint, body)
    assert (first.status_code, again.status_code) == (200, 200)
    path = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    lines = [
        (line["event"], line.get("path"), line.get("stripe_event_id"), line.get("stripe_event_redelivered"))
        for line in logs.lines()
    ]
    assert lines == [
        ("request_finished", path, "evt_one_line", False),
        ("request_finished", path, "evt_one_line", True),
    ]
    assert {line["stripe_event_type"] for line in logs.lines()} == {"payment_intent.succeeded"}
    assert list(StripeEvent.objects.values_list("pk", flat=True)) == ["evt_one_line"]
