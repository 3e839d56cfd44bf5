"""Writes of payments themselves: creation (with its Stripe PaymentIntent when the method is
charged through Stripe) and status moves, each validated, in one transaction with its domain event.

Checkout sessions are written by payments/checkout.py, refunds by payments/refunds.py.
"""

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jia_payments.core.api.auth import Principal
from jia_payments.core.api.errors import DomainError, Forbidden, InvalidTransition, NotFound
from jia_payments.core.api.timestamps import iso_utc
from jia_payments.core.api.validation import is_currency_code
from jia_payments.core.audit.trail import audit_context, creation_entry, record_changes
from jia_payments.core.inserts import NewRow, RowUpdate, insert_rows
from jia_payments.core.ops import tracing
from jia_payments.core.outbox.events import new_event, record_event
from payments import metrics
from payments.models import MAX_AMOUNT, Payment
from payments.stripe import gateway

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
    record_event(**_event_of(payment, type))


def _event_of(payment: Payment, type: str) -> dict[str, Any]:
    tracing.set_attributes({"payment.id": str(payment.pk), "payment.status": payment.status})
    return {
        "type": type,
        "aggregate_id": payment.pk,
        "subject": f"payments/{payment.pk}",
        "data": payment_data(payment),
    }


def _count_on_commit(payment: Payment, failure_code: str = "") -> None:
    """Metrics count a status once its transaction committed (a rolled-back move never happened)."""
    status, currency, reason = payment.status, payment.currency, payment.failure_reason
    transaction.on_commit(
        lambda: metrics.payment_reached(
            status=status, currency=currency, failure_reason=reason, failure_code=failure_code
        )
    )


class PaymentForbidden(Forbidden):
    """An end user creating a payment for someone else."""


class NewPayment(NamedTuple):
    payment: Payment
    client_secret: str | None  # the PaymentIntent's, for Stripe.js; None when Stripe is not involved


def is_stripe_method(payment_method: str) -> bool:
    """Whether a payment of this method is charged through a Stripe PaymentIntent."""
    return payment_method in settings.STRIPE_PAYMENT_METHODS


def payment_create(
    *,
    principal: Principal,
    amount: int,
    currency: str,
    payment_method: str,
    customer_id: str,
    order_id: str = "",
    description: str = "",
    metadata: dict | None = None,
    payment_id: uuid.UUID | None = None,
    written_with: Callable[[NewPayment], Sequence[NewRow | RowUpdate]] | None = None,
) -> NewPayment:
    """A new `pending` payment asked for by `principal` (an end user only for themself).

    `payment_id`: the id to make it under (the request's Idempotency-Key effect); asked again with
    it, the payment already made under it is answered (and Stripe, asked with the same idempotency
    key, answers the same PaymentIntent): a retry never makes a second payment or charge.

    A method in STRIPE_PAYMENT_METHODS is charged through a Stripe PaymentIntent, created first
    under the new payment's id (its idempotency key, and its metadata); then the row is written
    with `external_payment_id`, with its audit entry and its event in one statement, so a failure
    at Stripe writes nothing (503, the caller tries again) and `payment.created` already names the
    intent. The client confirms the intent with Stripe.js and its `client_secret`; the payment then
    moves only through Stripe's webhooks (payments/stripe/handlers.py). Other methods write the
    rows only.

    `written_with`: rows the caller has written by the same statement, made from the new payment
    just before the write (the request's stored answer); not called for a payment already made.
    """
    if not principal.may_act_for(customer_id):
        raise PaymentForbidden("An end user may only create payments for themself.")
    payment = _validated_payment(
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        customer_id=customer_id,
        order_id=order_id,
        description=description,
        metadata=metadata,
        id=payment_id or uuid.uuid4(),
    )
    client_secret = None
    if is_stripe_method(payment_method):
        intent = gateway.payment_intent_create(
            payment_id=payment.id,
            amount=amount,
            currency=currency,
            description=description,
            metadata={"customer_id": customer_id, "order_id": order_id},
        )
        payment.external_payment_id, client_secret = intent["id"], intent["client_secret"]
    also = written_with and (lambda: written_with(NewPayment(payment, client_secret)))
    return NewPayment(_insert(payment, also), client_secret)


def payment_record(
    *,
    amount: int,
    currency: str,
    payment_method: str,
    customer_id: str,
    order_id: str = "",
    description: str = "",
    metadata: dict | None = None,
    external_payment_id: str = "",
) -> Payment:
    """A `pending` payment row for money Stripe took on its own (a checkout, a renewal); no
    principal and no call to Stripe. Records `payment.created`."""
    return _insert(
        _validated_payment(
            amount=amount,
            currency=currency,
            payment_method=payment_method,
            customer_id=customer_id,
            order_id=order_id,
            description=description,
            metadata=metadata,
            external_payment_id=external_payment_id,
            id=uuid.uuid4(),
        )
    )


def _validated_payment(*, amount, currency, metadata, **fields) -> Payment:
    errors = {}
    if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT:
        errors["amount"] = [f"A whole number between 1 and {MAX_AMOUNT}."]
    if not is_currency_code(currency):
        errors["currency"] = [f"'{currency[:10]}' is not an ISO 4217 currency code."]
    if errors:
        raise DomainError(errors=errors)
    payment = Payment(amount=amount, currency=currency, metadata=metadata or {}, **fields)
    # Field rules (choices, lengths, formats) in Python; the CHECK constraints stay the database's
    # own last word, so no extra query per constraint here.
    payment.full_clean(validate_unique=False, validate_constraints=False)
    return payment


def _insert(payment: Payment, also: Callable[[], Sequence[NewRow | RowUpdate]] | None = None) -> Payment:
    """Write the new payment, its audit entry and its event (and the rows `also` makes then), or
    answer the payment already made under its id.

    The three rows are one statement (`core.inserts`), all or none: outside a transaction it is
    atomic by itself (no BEGIN and COMMIT); inside the caller's, it gets a savepoint, so that a
    refused INSERT leaves that transaction usable. The payment already made is read afterwards.
    """
    row = NewRow(payment)  # its created_at and updated_at, as its save would set them
    entry = creation_entry(payment)
    try:
        with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
            with _created_event(payment) as event_rows:
                entries = [NewRow(entry)] if entry is not None else []
                insert_rows(row, *entries, *event_rows, *(also() if also else ()))
            _count_on_commit(payment)
    except IntegrityError:
        made = Payment.objects.filter(pk=payment.pk).first()
        if made is None:
            raise  # another constraint refused it
        return made
    return payment


@contextmanager
def _created_event(payment: Payment) -> Iterator[list[NewRow]]:
    """`payment.created`'s outbox row, for the block to write with the payment."""
    with new_event(**_event_of(payment, "payment.created")) as event:
        yield [NewRow(event)]


def payment_move_status(
    *, payment_id, status: str, failure_reason: str = "", failure_code: str = "", reason: str = ""
) -> Payment:
    """Move a payment along the state machine (models.Payment.TRANSITIONS), or 409 `invalid_transition`:
    a payment already in `status` is refused too (see `payment_ensure_status` for Stripe's events).

    The UPDATE is conditional on the status just read, so two concurrent moves cannot both win:
    the loser re-reads the new status and is judged against it. Records `payment.status.updated`,
    and `payment.completed` when it completes, `payment.refunded` when refunded. `failure_code`:
    a machine-readable reason (Stripe's decline code) for metrics, when `failure_reason` is prose.
    `reason`: why (staff's words), for the audit trail.
    """
    if status not in Payment.Status.values:
        raise DomainError(errors={"status": [f'"{status}" is not a valid status.']})
    if status == Payment.Status.FAILED and not failure_reason:
        raise DomainError(errors={"failure_reason": ["Required when the status is failed."]})
    if status != Payment.Status.FAILED and failure_reason:
        raise DomainError(errors={"failure_reason": ["Only a failed payment has a failure reason."]})
    with audit_context(reason=reason), transaction.atomic():
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


def payment_ensure_status(
    *, payment_id, status: str, failure_reason: str = "", failure_code: str = ""
) -> tuple[Payment, bool]:
    """`payment_move_status` for Stripe's events, which repeat and arrive out of order: a payment
    already in `status` is left as it is (not refused). Answers (payment, moved)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
        if payment is None:
            raise NotFound("No such payment.")
        if payment.status == status:
            return payment, False
        return payment_move_status(
            payment_id=payment_id, status=status, failure_reason=failure_reason, failure_code=failure_code
        ), True
