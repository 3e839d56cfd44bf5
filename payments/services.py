"""Every write to payments: validation, the transaction, and the domain event in that transaction."""

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from jia_payments.core.api.errors import DomainError, InvalidTransition, NotFound
from jia_payments.core.api.timestamps import iso_utc
from jia_payments.core.api.validation import is_currency_code
from jia_payments.core.audit.trail import record_changes
from jia_payments.core.outbox.events import record_event
from payments import metrics
from payments.models import MAX_AMOUNT, Payment

# The payment as the API shows it (and as events carry it, API.md "Events").
PAYMENT_FIELDS = (
    "id",
    "amount",
    "currency",
    "status",
    "payment_method",
    "customer_id",
    "order_id",
    "description",
    "external_payment_id",
    "failure_reason",
    "metadata",
    "created_at",
    "updated_at",
)


def payment_data(payment: Payment) -> dict[str, Any]:
    """The payment exactly as the API renders it (ids as strings, ISO 8601 UTC times with "Z")."""
    data = {field: getattr(payment, field) for field in PAYMENT_FIELDS}
    data["id"] = str(payment.id)
    for field in ("created_at", "updated_at"):
        data[field] = iso_utc(data[field])
    return data


def _record(payment: Payment, type: str) -> None:
    record_event(
        type=type, aggregate_id=payment.pk, subject=f"payments/{payment.pk}", data=payment_data(payment)
    )


def _count_on_commit(payment: Payment, failure_code: str = "") -> None:
    """Metrics count a status once its transaction committed (a rolled-back move never happened)."""
    status, currency, reason = payment.status, payment.currency, payment.failure_reason
    transaction.on_commit(
        lambda: metrics.payment_reached(
            status=status, currency=currency, failure_reason=reason, failure_code=failure_code
        )
    )


def payment_create(
    *,
    amount: int,
    currency: str,
    payment_method: str,
    customer_id: str,
    order_id: str = "",
    description: str = "",
    metadata: dict | None = None,
    external_payment_id: str = "",
    payment_id: uuid.UUID | None = None,
) -> Payment:
    """A new payment, `pending`; records `payment.created`. `payment_id`: an id chosen beforehand
    (a Stripe PaymentIntent is created under it first, see payments/payment_intents.py)."""
    errors = {}
    if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT:
        errors["amount"] = [f"A whole number between 1 and {MAX_AMOUNT}."]
    if not is_currency_code(currency):
        errors["currency"] = [f"'{currency[:10]}' is not an ISO 4217 currency code."]
    if errors:
        raise DomainError(errors=errors)
    payment = Payment(
        id=payment_id or uuid.uuid4(),
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        customer_id=customer_id,
        order_id=order_id,
        description=description,
        metadata=metadata or {},
        external_payment_id=external_payment_id,
    )
    # Field rules (choices, lengths, formats) in Python; the CHECK constraints stay the database's
    # own last word, so no extra query per constraint here.
    payment.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        payment.save(force_insert=True)
        _record(payment, "payment.created")
        _count_on_commit(payment)
    return payment


def payment_update_status(
    *, payment_id, status: str, failure_reason: str = "", failure_code: str = ""
) -> Payment:
    """Move a payment along the state machine (models.Payment.TRANSITIONS), or 409 `invalid_transition`.

    The UPDATE is conditional on the status just read, so two concurrent moves cannot both win:
    the loser re-reads the new status and is judged against it. Records `payment.status.updated`,
    and `payment.completed` when it completes, `payment.refunded` when refunded. `failure_code`:
    a machine-readable reason (Stripe's decline code) for metrics, when `failure_reason` is prose.
    """
    if status not in Payment.Status.values:
        raise DomainError(errors={"status": [f'"{status}" is not a valid status.']})
    if status == Payment.Status.FAILED and not failure_reason:
        raise DomainError(errors={"failure_reason": ["Required when the status is failed."]})
    if status != Payment.Status.FAILED and failure_reason:
        raise DomainError(errors={"failure_reason": ["Only a failed payment has a failure reason."]})
    with transaction.atomic():
        while True:
            before = Payment.objects.filter(pk=payment_id).values_list("status", "failure_reason").first()
            if before is None:
                raise NotFound("No such payment.")
            current = before[0]
            if status not in Payment.TRANSITIONS[Payment.Status(current)]:
                raise InvalidTransition(f"A {current} payment cannot become {status}.")
            moved = Payment.objects.filter(pk=payment_id, status=current).update(
                status=status, failure_reason=failure_reason, updated_at=timezone.now()
            )
            if moved:
                break
        payment = Payment.objects.get(pk=payment_id)
        # The conditional UPDATE sends no signal: the audit trail gets the move from here.
        record_changes(
            Payment,
            [
                (
                    payment.pk,
                    str(payment),
                    {"status": (current, status), "failure_reason": (before[1], payment.failure_reason)},
                )
            ],
        )
        _record(payment, "payment.status.updated")
        _count_on_commit(payment, failure_code)
        if status == Payment.Status.COMPLETED:
            _record(payment, "payment.completed")
        elif status == Payment.Status.REFUNDED:
            _record(payment, "payment.refunded")
    return payment


def payment_reach_status(
    *, payment_id, status: str, failure_reason: str = "", failure_code: str = ""
) -> tuple[Payment, bool]:
    """`payment_update_status` for Stripe's events, which repeat and arrive out of order: a payment
    already in `status` is left as it is. Answers (payment, moved)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
        if payment is None:
            raise NotFound("No such payment.")
        if payment.status == status:
            return payment, False
        return payment_update_status(
            payment_id=payment_id, status=status, failure_reason=failure_reason, failure_code=failure_code
        ), True
