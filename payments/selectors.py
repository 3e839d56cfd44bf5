"""Reads of payments that need more than a one-line query."""

import uuid

from payments.models import CheckoutSession, Payment


def checkout_session_for_subscription(subscription_id: str, metadata: dict | None) -> CheckoutSession | None:
    """Our session that created a Stripe subscription (by id once complete, else its metadata)."""
    session = CheckoutSession.objects.filter(stripe_subscription_id=subscription_id).first()
    if session is None and (metadata or {}).get("checkout_session_id"):
        session = CheckoutSession.objects.filter(pk=_uuid(metadata["checkout_session_id"])).first()
    return session


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def payment_for_intent(payment_intent_id: str) -> Payment | None:
    return (
        Payment.objects.filter(external_payment_id=payment_intent_id).first() if payment_intent_id else None
    )


def checkout_session_get(checkout_session_id) -> CheckoutSession | None:
    key = _uuid(checkout_session_id)
    return CheckoutSession.objects.select_related("plan").filter(pk=key).first() if key else None
