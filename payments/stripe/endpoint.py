"""The one dj-stripe webhook endpoint row this service answers on, kept equal to settings."""

import uuid

from django.conf import settings
from django.db import transaction
from djstripe.enums import WebhookEndpointStatus
from djstripe.models import WebhookEndpoint

from payments.stripe.handlers import HANDLERS

_UUID_NAMESPACE = uuid.UUID("5b0a6c8e-2f53-4d6e-9a57-7d1c3b1f0e42")


def webhook_uuid() -> uuid.UUID:
    if settings.STRIPE_WEBHOOK_UUID:
        return uuid.UUID(settings.STRIPE_WEBHOOK_UUID)
    return uuid.uuid5(_UUID_NAMESPACE, settings.STRIPE_WEBHOOK_SECRET)


def webhook_endpoint_ensure(*, base_url: str = "") -> tuple[WebhookEndpoint, bool]:
    """Create or update the endpoint with STRIPE_WEBHOOK_SECRET and a 300 s tolerance; `base_url`
    (this service's public URL) only records where Stripe calls."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise ValueError("STRIPE_WEBHOOK_SECRET is not set: copy it from the endpoint in Stripe's dashboard.")
    endpoint_uuid = webhook_uuid()
    values = {
        "djstripe_uuid": endpoint_uuid,
        "secret": settings.STRIPE_WEBHOOK_SECRET,
        "djstripe_tolerance": settings.DJSTRIPE_WEBHOOK_TOLERANCE,
        "enabled_events": sorted(HANDLERS),
        "status": WebhookEndpointStatus.enabled,
        "livemode": settings.STRIPE_LIVE_MODE,
        "api_version": "",
    }
    if base_url:
        values["url"] = f"{base_url.rstrip('/')}/stripe/webhook/{endpoint_uuid}/"
    with transaction.atomic():
        return WebhookEndpoint.objects.update_or_create(
            id=f"we_jia_{endpoint_uuid.hex[:20]}",
            defaults=values,
            create_defaults={"url": f"http://localhost/stripe/webhook/{endpoint_uuid}/", **values},
        )
