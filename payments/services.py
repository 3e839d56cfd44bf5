"""Writes to payments: creation and the status state machine, each with its outbox event."""

from django.db import transaction

from jia_payments.core.errors import InvalidTransition, NotFound
from jia_payments.core.events import record_event
from payments.models import Payment

# The event each status gets besides `payment.status.updated` (API.md, Events).
_STATUS_EVENTS = {Payment.Status.COMPLETED: "payment.completed", Payment.Status.REFUNDED: "payment.refunded"}


def payment_data(payment: Payment) -> dict:
    """The payment as the API shows it (the `data` of its events)."""
    fields = [
        "id", "amount", "currency", "status", "payment_method", "customer_id", "order_id",
        "description", "external_payment_id", "failure_reason", "metadata", "created_at", "updated_at",
    ]  # fmt: skip
    return {field: getattr(payment, field) for field in fields}


def _record(payment: Payment, event_type: str) -> None:
    record_event(
        type=event_type, aggregate_id=payment.pk, subject=f"payments/{payment.pk}", data=payment_data(payment)
    )


def payment_create(
    *,
    amount: int,
    currency: str,
    payment_method: str,
    customer_id: str,
    order_id: str = "",
    description: str = "",
    external_payment_id: str = "",
    metadata: dict | None = None,
) -> Payment:
    with transaction.atomic():
        payment = Payment(
            amount=amount,
            currency=currency.upper(),
            payment_method=payment_method,
            customer_id=customer_id,
            order_id=order_id,
            description=description,
            external_payment_id=external_payment_id,
            metadata=metadata or {},
        )
        payment.full_clean()
        payment.save(force_insert=True)
        _record(payment, "payment.created")
    return payment


def payment_transition(*, payment_id, to_status: str, failure_reason: str = "") -> tuple[Payment, bool]:
    """Move a payment along its state machine; answers (payment, moved).

    Moving to the status it already has is a no-op (webhooks repeat themselves); any other move
    the machine does not allow is `InvalidTransition`. The row is locked for the move.
    """
    to_status = Payment.Status(to_status)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
        if payment is None:
            raise NotFound("No such payment.")
        if payment.status == to_status:
            return payment, False
        if not payment.can_move_to(to_status):
            raise InvalidTransition(f"A {payment.status} payment cannot become {to_status}.")
        payment.status = to_status
        if to_status == Payment.Status.FAILED:
            payment.failure_reason = failure_reason[:500]
        payment.save(update_fields=["status", "failure_reason", "updated_at"])
        _record(payment, "payment.status.updated")
        if to_status in _STATUS_EVENTS:
            _record(payment, _STATUS_EVENTS[to_status])
    return payment, True
