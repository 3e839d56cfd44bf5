"""Reads of payments, always through what the caller may see (another user's payment is 404)."""

from django.db.models import QuerySet

from jia_payments.core.auth import Principal
from jia_payments.core.errors import NotFound
from payments.models import Payment


def payments_visible_to(principal: Principal) -> QuerySet[Payment]:
    """Service and staff see every payment; an end user only those whose customer_id is theirs."""
    payments = Payment.objects.all()
    return payments if principal.is_privileged else payments.filter(customer_id=principal.user_id)


def payment_get(*, principal: Principal, payment_id) -> Payment:
    payment = payments_visible_to(principal).filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def payment_list(*, principal: Principal, customer_id: str | None = None, status: str | None = None):
    """Newest first (ties broken by id, so pages are stable)."""
    payments = payments_visible_to(principal)
    if customer_id is not None:
        payments = payments.filter(customer_id=customer_id)
    if status is not None:
        payments = payments.filter(status=status)
    return payments.order_by("-created_at", "-id")
