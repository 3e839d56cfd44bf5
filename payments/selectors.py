"""Reads of payments and checkout sessions.

A caller's reads go through what that caller may see: `*_get(principal=...)` raises NotFound for a
row that does not exist or is not theirs. The Stripe webhooks' lookups, `*_find`, answer None.
"""

import uuid
from datetime import datetime

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from jia_payments.core.api.auth import Principal
from jia_payments.core.api.errors import NotFound
from payments.models import CheckoutSession, Payment, StripeEvent, Subscription

SUCCEEDED = (Payment.Status.COMPLETED, Payment.Status.REFUNDED)


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


def subscriptions_visible_to(*, principal: Principal) -> QuerySet[Subscription]:
    """Service and staff see every subscription; an end user only those they pay for."""
    subscriptions = Subscription.objects.all()
    return subscriptions if principal.is_privileged else subscriptions.filter(user_id=principal.user_id)


def subscription_get(*, principal: Principal, subscription_id) -> Subscription:
    subscription = subscriptions_visible_to(principal=principal).filter(pk=_uuid(subscription_id)).first()
    if subscription is None:
        raise NotFound("No such subscription.")
    return subscription


def subscription_list(*, principal: Principal, user_id: str | None = None) -> QuerySet[Subscription]:
    """Newest first (ties broken by id, so pages are stable)."""
    subscriptions = subscriptions_visible_to(principal=principal)
    if user_id is not None:
        subscriptions = subscriptions.filter(user_id=user_id)
    return subscriptions.order_by("-created_at", "-id")


def payment_totals_per_day(*, since: datetime) -> list[dict]:
    """Payments created since `since`, per local day and currency, in one aggregate query:
    `{day, currency, count, succeeded, failed, kept}`, `kept` being what succeeded less refunds."""
    return list(
        Payment.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "currency")
        .annotate(
            count=Count("id"),
            succeeded=Count("id", filter=Q(status__in=SUCCEEDED)),
            failed=Count("id", filter=Q(status=Payment.Status.FAILED)),
            kept=Sum(F("amount") - F("refunded_amount"), filter=Q(status__in=SUCCEEDED)),
        )
    )


def stripe_event_backlog() -> dict[str, int]:
    """Stripe events that failed, and those waiting for another try: `{failed, pending}`."""
    return StripeEvent.objects.aggregate(
        failed=Count("id", filter=Q(status=StripeEvent.Status.FAILED)),
        pending=Count("id", filter=Q(status=StripeEvent.Status.PENDING)),
    )
