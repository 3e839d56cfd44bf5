"""From a Stripe id in admin to dj-stripe's mirror of that object (its `id` is Stripe's id)."""

from django.utils.html import format_html

from jia_payments.core.admin_links import admin_link

# Which mirror to open for a kind of Stripe id: a PaymentIntent is shown through its charge.
MIRRORS = {
    "payment_intent": ("Charge", "payment_intent__id"),
    "charge": ("Charge", "id"),
    "refund": ("Refund", "id"),
    "subscription": ("Subscription", "id"),
    "customer": ("Customer", "id"),
    "invoice": ("Invoice", "id"),
    "event": ("Event", "id"),
}


def stripe_mirror(kind: str, stripe_id: str):
    """dj-stripe's copy of a Stripe object, or None when it was not synced (or there is no id)."""
    if not stripe_id:
        return None
    from djstripe import models

    model_name, lookup = MIRRORS[kind]
    return getattr(models, model_name).objects.filter(**{lookup: stripe_id}).first()


def stripe_mirror_link(kind: str, stripe_id: str) -> str:
    """The Stripe id, linked to its mirror's admin page when dj-stripe has it."""
    if not stripe_id:
        return "-"
    mirror = stripe_mirror(kind, stripe_id)
    if mirror is None:
        return format_html("{} <small>(not mirrored)</small>", stripe_id)
    return admin_link(mirror, stripe_id)
