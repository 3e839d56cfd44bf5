"""Stripe's calls to `/stripe/webhook/<uuid>/`: dj-stripe's endpoint, a little stricter.

dj-stripe stores every call (`WebhookEventTrigger`) and verifies its signature (HMAC-SHA256 over
"<t>.<body>", timestamp at most `djstripe_tolerance` seconds old); then it hands the verified event
to `DJSTRIPE_WEBHOOK_EVENT_CALLBACK`, `enqueue_webhook_event` below, inside its transaction. We
store the event under its Stripe id and answer 200 at once (JSON naming the Stripe event id, the
same for a redelivery, which stores and processes nothing more); a Celery task processes it.
"""

import logging
import time

from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.views import ProcessWebhookView

from payments.models import StripeEvent
from payments.stripe.events import stripe_event_receive

logger = logging.getLogger(__name__)


def _signed_at(header: str) -> int | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return None


class StripeWebhookView(ProcessWebhookView):
    """Also refuses a signature dated further in the future than the tolerance (the SDK checks only
    the past), and ignores dj-stripe's DEBUG-only header that lets the caller name the secret.

    dj-stripe's own `post`, with the endpoint read once for both checks (its view reads it again)."""

    def post(self, request, uuid):
        request.META.pop("HTTP_X_DJSTRIPE_WEBHOOK_SECRET", None)
        if "stripe-signature" not in request.headers:
            return super().post(request, uuid)  # dj-stripe's 400, stores nothing
        endpoint = get_object_or_404(WebhookEndpoint, djstripe_uuid=uuid)
        signed_at = _signed_at(request.META.get("HTTP_STRIPE_SIGNATURE", ""))
        if signed_at is not None and signed_at > time.time() + endpoint.djstripe_tolerance:
            logger.warning("stripe webhook signed %ss in the future refused", int(signed_at - time.time()))
            return HttpResponseBadRequest()
        trigger = WebhookEventTrigger.from_request(request, webhook_endpoint=endpoint)
        if not trigger.valid:
            logger.error("Trigger object did not validate")
            return HttpResponseBadRequest()
        # The same answer for a redelivery: Stripe only needs the 200; the event is stored once.
        return JsonResponse({"received": True, "event_id": trigger.json_body["id"]})


def enqueue_webhook_event(trigger, api_key=None) -> None:
    """DJSTRIPE_WEBHOOK_EVENT_CALLBACK: a verified event, stored for our Celery task."""
    event = trigger.json_body
    if stripe_event_receive(event=event, source=StripeEvent.Source.WEBHOOK):
        logger.info("stripe event %s (%s) received", event["id"], event["type"])
    else:
        logger.info("stripe event %s delivered again; already stored", event["id"])
