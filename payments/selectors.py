"""Reads of payments and checkout sessions.

A caller's reads go through what that caller may see: `*_get(principal=...)` raises NotFound for a
row that does not exist or is not theirs. The Stripe webhooks' lookups, `*_find`, answer None.
"""

import uuid

from django.db.models import QuerySet

from jia_payments.core.api.auth import Principal
from jia_payments.core.api.errors import NotFound
from payments.models import CheckoutSession, Payment


def payments_visible_to(*, principal: Principal) -> QuerySet[Payment]:
    """Service and staff see every payment; an end user only those whose customer_id is theirs."""
    payments = Payment.objects.all()
    return payments if principal.is_privileged else payments.filter(customer_id=principal.user_id)


def payment_get(*, principal: Principal, payment_id) -> Payment:
    payment = payments_visible_to(principal=principal).filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def payment_list(*, principal: Principal, customer_id: str | None = None, status: str | None = None):
    """Newest first (ties broken by id, so pages are stable)."""
    payments = payments_visible_to(principal=principal)
    if customer_id is not None:
        payments = payments.filter(customer_id=customer_id)
    if status is not None:
        payments = payments.filter(status=status)
    return payments.order_by("-created_at", "-id")


def checkout_session_find_for_subscription(
    *, subscription_id: str, metadata: dict | None
) -> CheckoutSession | None:
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


def payment_find_for_intent(*, payment_intent_id: str) -> Payment | None:
    return (
        Payment.objects.filter(external_payment_id=payment_intent_id).first() if payment_intent_id else None
    )


def checkout_session_find(*, checkout_session_id) -> CheckoutSession | None:
    key = _uuid(checkout_session_id)
    return CheckoutSession.objects.select_related("plan").filter(pk=key).first() if key else None


def checkout_session_get(*, principal: Principal, checkout_session_id) -> CheckoutSession:
    """The session if `principal` may see it (its buyer, a service or staff)."""
    session = checkout_session_find(checkout_session_id=checkout_session_id)
    if session is None or not principal.may_act_for(session.user_id):
        raise NotFound("No such checkout session.")
    return session
