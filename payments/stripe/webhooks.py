"""Stripe's calls to `/stripe/webhook/<uuid>/`: verified, stored, acknowledged; Celery processes.

A call is verified first (HMAC-SHA256 over "<t>.<body>" with the endpoint's secret, by Stripe's
SDK; timestamp at most the endpoint's `djstripe_tolerance` seconds old, nor further ahead, which
the SDK does not check): a refused call stores nothing and enqueues nothing. A verified event is
stored under its Stripe id in one statement and its task enqueued after that commit
(`events.stripe_event_receive`); the answer is 200 with JSON naming the event id, the same for a
redelivery, which stores and enqueues nothing more. The call's one log line (`request_finished`)
names the event: `stripe_event_id`, `stripe_event_type` and `stripe_event_redelivered` are bound
to the request's log context, and warnings are written only for refused calls. dj-stripe's
`WebhookEventTrigger` log (a row written for every call, then updated) is not kept: the stored
event is the record of a call.

With `DJSTRIPE_WEBHOOK_EVENT_CALLBACK` other than `enqueue_webhook_event` (unset: dj-stripe's
default, processing in the request), dj-stripe's own handling runs, with the same checks.
"""

import functools
import logging
import time

import orjson
import stripe
import structlog
from django.db import connection
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.settings import djstripe_settings
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


def _signed_in_the_future(header: str, tolerance: int) -> bool:
    signed_at = _signed_at(header)
    if signed_at is not None and signed_at > time.time() + tolerance:
        logger.warning("stripe webhook signed %ss in the future refused", int(signed_at - time.time()))
        return True
    return False


class StripeWebhookView(ProcessWebhookView):
    """dj-stripe's view (CSRF-exempt, outside ATOMIC_REQUESTS, no login), answering as above; it
    ignores dj-stripe's DEBUG-only header that lets the caller name the secret."""

    def post(self, request, uuid):
        request.META.pop("HTTP_X_DJSTRIPE_WEBHOOK_SECRET", None)
        header = request.META.get("HTTP_STRIPE_SIGNATURE")
        if header is None:
            return super().post(request, uuid)  # dj-stripe's 400, stores nothing
        if djstripe_settings.WEBHOOK_EVENT_CALLBACK is not enqueue_webhook_event:
            return self._handled_by_dj_stripe(request, uuid, header)
        secret, tolerance = _endpoint_secret(uuid)
        if _signed_in_the_future(header, tolerance):
            return HttpResponseBadRequest()
        body = request.body
        try:
            stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance)
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
            logger.warning("stripe webhook refused: %s", error)
            return HttpResponseBadRequest()
        event = _event(body)
        if event is None:
            logger.error("stripe webhook rightly signed but not an event refused")
            return HttpResponseBadRequest()
        _receive(event)
        # The same answer for a redelivery: Stripe only needs the 200; the event is stored once.
        return HttpResponse(
            orjson.dumps({"received": True, "event_id": event["id"]}), content_type="application/json"
        )

    def _handled_by_dj_stripe(self, request, uuid, header: str):
        """dj-stripe's own `post`, with the endpoint read once for both checks (its view reads it
        again)."""
        endpoint = get_object_or_404(WebhookEndpoint, djstripe_uuid=uuid)
        if _signed_in_the_future(header, endpoint.djstripe_tolerance):
            return HttpResponseBadRequest()
        trigger = WebhookEventTrigger.from_request(request, webhook_endpoint=endpoint)
        if not trigger.valid:
            logger.error("Trigger object did not validate")
            return HttpResponseBadRequest()
        return HttpResponse(
            orjson.dumps({"received": True, "event_id": trigger.json_body["id"]}),
            content_type="application/json",
        )


def _endpoint_secret(uuid) -> tuple[str, int]:
    """The endpoint's (secret, tolerance), only those columns; no such endpoint: 404."""
    with connection.cursor() as cursor:
        cursor.execute(
            _endpoint_secret_sql(),
            [WebhookEndpoint._meta.get_field("djstripe_uuid").get_db_prep_value(uuid, connection)],
        )
        found = cursor.fetchone()
    if found is None:
        raise Http404("No webhook endpoint with this uuid.")
    return found[0], found[1]


@functools.cache
def _endpoint_secret_sql() -> str:
    """Built once: the ORM would compile the same SELECT on every call."""
    meta = WebhookEndpoint._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    # Only quoted identifiers from the model are interpolated; the uuid is a query parameter.
    return (
        f"SELECT {column('secret')}, {column('djstripe_tolerance')} FROM {quote(meta.db_table)} "  # noqa: S608
        f"WHERE {column('djstripe_uuid')} = %s"
    )


def _event(body: bytes) -> dict | None:
    """The verified body as an event, or None when it is not one."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not all(
        isinstance(event.get(key), kind) for key, kind in (("id", str), ("type", str), ("created", int))
    ):
        return None
    return event


def _receive(event: dict) -> None:
    stored = stripe_event_receive(event=event, source=StripeEvent.Source.WEBHOOK)
    structlog.contextvars.bind_contextvars(
        stripe_event_id=event["id"], stripe_event_type=event["type"], stripe_event_redelivered=not stored
    )


def enqueue_webhook_event(trigger, api_key=None) -> None:
    """DJSTRIPE_WEBHOOK_EVENT_CALLBACK: names the handling above; called by dj-stripe's own
    processing (`WebhookEventTrigger.process`), it stores the verified event the same way."""
    _receive(trigger.json_body)
