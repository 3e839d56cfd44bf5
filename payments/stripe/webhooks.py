"""Stripe's calls to `/stripe/webhook/<uuid>/`: dj-stripe's endpoint, a little stricter.

dj-stripe stores every call (`WebhookEventTrigger`) and verifies its signature (HMAC-SHA256 over
"<t>.<body>", timestamp at most `djstripe_tolerance` seconds old); then it hands the verified event
to `DJSTRIPE_WEBHOOK_EVENT_CALLBACK`, `enqueue_webhook_event` below, inside its transaction. We
store the event under its Stripe id and answer 200 at once; a Celery task processes it.
"""

import logging
import time

from django.http import HttpResponseBadRequest
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
    the past), and ignores dj-stripe's DEBUG-only header that lets the caller name the secret."""

    def post(self, request, uuid):
        request.META.pop("HTTP_X_DJSTRIPE_WEBHOOK_SECRET", None)
        signed_at = _signed_at(request.META.get("HTTP_STRIPE_SIGNATURE", ""))
        if signed_at is not None and signed_at > time.time() + _tolerance(uuid):
            logger.warning("stripe webhook signed %ss in the future refused", int(signed_at - time.time()))
            return HttpResponseBadRequest()
        return super().post(request, uuid)


def _tolerance(uuid) -> int:
    from djstripe.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.filter(djstripe_uuid=uuid).only("djstripe_tolerance").first()
    return endpoint.djstripe_tolerance if endpoint else 300


def enqueue_webhook_event(trigger, api_key=None) -> None:
    """DJSTRIPE_WEBHOOK_EVENT_CALLBACK: a verified event, stored for our Celery task."""
    event = trigger.json_body
    if stripe_event_receive(event=event, source=StripeEvent.Source.WEBHOOK):
        logger.info("stripe event %s (%s) received", event["id"], event["type"])
    else:
        logger.info("stripe event %s delivered again; already stored", event["id"])
