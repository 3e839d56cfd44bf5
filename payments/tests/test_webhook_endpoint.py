"""`manage.py stripe_webhook_endpoint`: dj-stripe's endpoint row from settings, idempotently."""

import uuid

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from djstripe.models import WebhookEndpoint

from payments.webhook_handlers import HANDLERS

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
