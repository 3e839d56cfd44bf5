"""Refunds through Stripe, full or partial, asked for here or made in Stripe's dashboard.

A refund asked for here is reserved first (a pending row, counted against what is left, under the
payment's row lock), then sent to Stripe with our row id as idempotency key, then settled. Stripe's
`charge.refunded` webhook settles through the same function, so whichever comes first does it and
the other changes nothing. A full refund cancels the entitlements the payment granted (and, for a
subscription, the subscription: no more renewals charged for features no longer given).
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from entitlements import services as entitlement_services
from jia_payments.core.api.errors import DomainError, InvalidTransition, NotFound, Unprocessable
from jia_payments.core.audit.trail import audit_context, record_changes
from payments.models import Payment, Refund
from payments.services import is_stripe_method, payment_ensure_status
from payments.stripe import gateway

logger = logging.getLogger(__name__)


class RefundTooLarge(DomainError):
    status, code, title = 422, "refund_too_large", "More than is left to refund"


def is_stripe_payment(payment: Payment) -> bool:
    """Charged through Stripe: a PaymentIntent we made (`is_stripe_method`) or a Checkout's."""
    method = payment.payment_method
    by_stripe = is_stripe_method(method) or method == Payment.Method.STRIPE_CHECKOUT
    return by_stripe and bool(payment.external_payment_id)


def payment_refund(
    *, payment_id, amount: int | None, reason: str, requested_by: str, refund_id: uuid.UUID | None = None
) -> Payment:
    """Refund `amount` (None: all that is left) of a completed Stripe payment. The reason goes to
    Stripe, onto the refund, and into every audit entry the refund writes.

    `refund_id`: the id to make the refund under (the request's Idempotency-Key effect); asked again
    with it, the refund already made under it is sent to Stripe again with the same idempotency key
    (Stripe answers the first result) and settled: never a second refund.
    """
    with audit_context(reason=reason):
        return _refund(
            payment_id=payment_id,
            amount=amount,
            reason=reason,
            requested_by=requested_by,
            refund_id=refund_id,
        )


def _refund(*, payment_id, amount: int | None, reason: str, requested_by: str, refund_id) -> Payment:
    refund = _reserve(
        payment_id=payment_id, amount=amount, reason=reason, requested_by=requested_by, refund_id=refund_id
    )
    payment = refund.payment
    try:
        stripe_refund = gateway.refund_create(
            refund_id=refund.pk,
            payment_intent_id=payment.external_payment_id,
            amount=refund.amount,
            reason=reason,
        )
    except (gateway.CardDeclined, gateway.StripeRejected) as error:
        _fail_pending(refund, str(error.detail))
        raise
    # StripeUnavailable leaves the refund pending: Stripe may have done it. Its webhook, or
    # reconciliation retrying with the same idempotency key, settles it; meanwhile the pending
    # amount cannot be refunded twice.
    payment = payment_refunds_sync(
        payment_intent_id=payment.external_payment_id, stripe_refunds=[stripe_refund]
    )
    if payment.status == Payment.Status.REFUNDED and payment.metadata.get("stripe_subscription_id"):
        _cancel_subscription(payment.metadata["stripe_subscription_id"])
    return payment


def _reserve(*, payment_id, amount: int | None, reason: str, requested_by: str, refund_id) -> Refund:
    """A new pending refund, or the one already made under `refund_id` (a retry)."""
    with transaction.atomic():
        made = _made_before(payment_id=payment_id, refund_id=refund_id)
        if made is not None:
            return made
        payment = _locked_refundable(payment_id)
        if not is_stripe_payment(payment):
            raise Unprocessable("This payment was not made through Stripe.")
        amount = _checked_amount(payment, amount)
        return Refund.objects.create(
            id=refund_id or uuid.uuid4(),
            payment=payment,
            amount=amount,
            reason=reason[:500],
            requested_by=requested_by[:255],
        )


def _made_before(*, payment_id, refund_id) -> Refund | None:
    """The refund of this payment already made under `refund_id`, read under the payment's lock (so
    a retry racing the first request waits for its reservation)."""
    if refund_id is None:
        return None
    if Payment.objects.select_for_update().filter(pk=payment_id).first() is None:
        raise NotFound("No such payment.")
    return Refund.objects.select_related("payment").filter(pk=refund_id, payment_id=payment_id).first()


def payment_refunds_sync(*, payment_intent_id: str, stripe_refunds: list[dict]) -> Payment | None:
    """Make our refunds of a PaymentIntent's payment match Stripe's; answers the payment (None
    when no payment of ours has that PaymentIntent)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(external_payment_id=payment_intent_id).first()
        if payment is None:
            return None
        for stripe_refund in stripe_refunds:
            _sync_one(payment, stripe_refund)
        payment = _settle(payment)
    return payment


def _settle(payment: Payment) -> Payment:
    """Once all of it is refunded, the payment is `refunded` and the access it gave is cancelled."""
    payment.refresh_from_db()
    if payment.refunded_amount >= payment.amount and payment.status == Payment.Status.COMPLETED:
        payment, _ = payment_ensure_status(payment_id=payment.pk, status=Payment.Status.REFUNDED)
        entitlement_services.entitlements_cancel_for_payment(payment_id=payment.pk, reason="refunded")
        if payment.metadata.get("stripe_subscription_id"):
            entitlement_services.entitlements_cancel_for_subscription(
                subscription_id=payment.metadata["stripe_subscription_id"], reason="refunded"
            )
    return payment


def refund_left(payment: Payment) -> int:
    """What can still be refunded: the amount less what is refunded and what is being refunded."""
    pending = payment.refunds.filter(status=Refund.Status.PENDING).aggregate(total=Sum("amount"))["total"]
    return payment.amount - payment.refunded_amount - (pending or 0)


def payment_refund_record_external(
    *, payment_id, amount: int | None, reason: str, requested_by: str
) -> Payment:
    """Record a refund made outside Stripe (money sent back by bank transfer) of a payment not made
    through Stripe (None: all that is left). It counts as any refund: all of it refunded makes the
    payment `refunded` and cancels the access it gave."""
    if not reason.strip():
        raise DomainError("A refund needs a reason.", errors={"reason": ["Required."]})
    with audit_context(reason=reason), transaction.atomic():
        payment = _locked_refundable(payment_id)
        if is_stripe_payment(payment):
            raise Unprocessable("This payment was made through Stripe: refund it through Stripe.")
        amount = _checked_amount(payment, amount)
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            reason=reason[:500],
            status=Refund.Status.SUCCEEDED,
            requested_by=requested_by[:255],
        )
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=F("refunded_amount") + amount)
        _audit_refunded_amount(payment, -amount, refund=str(refund.pk))
        return _settle(payment)


def _locked_refundable(payment_id) -> Payment:
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    if payment.status != Payment.Status.COMPLETED:
        raise InvalidTransition(f"A {payment.status} payment cannot be refunded.")
    return payment


def _checked_amount(payment: Payment, amount: int | None) -> int:
    left = refund_left(payment)
    amount = left if amount is None else amount
    if amount <= 0 or amount > left:
        raise RefundTooLarge(
            f"{left} {payment.currency} is left to refund.", errors={"amount": [f"At most {left}."]}
        )
    return amount


def _sync_one(payment: Payment, stripe_refund: dict) -> None:
    ours = Refund.objects.select_for_update().filter(stripe_refund_id=stripe_refund["id"]).first()
    our_id = (stripe_refund.get("metadata") or {}).get("refund_id")
    if ours is None and our_id:
        ours = Refund.objects.select_for_update().filter(pk=our_id, payment=payment).first()
    if ours is None:  # made in Stripe's dashboard
        ours = Refund.objects.create(
            payment=payment,
            amount=stripe_refund["amount"],
            reason=(stripe_refund.get("reason") or "")[:500],
            requested_by="stripe",
            stripe_refund_id=stripe_refund["id"],
        )
    if not ours.stripe_refund_id:
        ours.stripe_refund_id = stripe_refund["id"]
    status = stripe_refund.get("status")
    if status == "succeeded" and ours.status != Refund.Status.SUCCEEDED:
        ours.status = Refund.Status.SUCCEEDED
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=F("refunded_amount") + ours.amount)
        _audit_refunded_amount(payment, -ours.amount, refund=str(ours.pk))
    elif status in ("failed", "canceled") and ours.status != Refund.Status.FAILED:
        if ours.status == Refund.Status.SUCCEEDED:  # Stripe could not return the money after all
            Payment.objects.filter(pk=payment.pk).update(refunded_amount=F("refunded_amount") - ours.amount)
            _audit_refunded_amount(payment, ours.amount, refund=str(ours.pk))
        ours.status = Refund.Status.FAILED
        ours.failure_reason = (stripe_refund.get("failure_reason") or status)[:500]
    ours.save()


def _fail_pending(refund: Refund, failure_reason: str) -> None:
    failure_reason = failure_reason[:500]
    if Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).update(
        status=Refund.Status.FAILED, failure_reason=failure_reason
    ):
        record_changes(
            Refund,
            [
                (
                    refund.pk,
                    str(refund),
                    {
                        "status": (Refund.Status.PENDING, Refund.Status.FAILED),
                        "failure_reason": ("", failure_reason),
                    },
                )
            ],
        )


def _audit_refunded_amount(payment: Payment, before_offset: int, **what) -> None:
    """Audit the refunded total moved by an F() UPDATE (auditlog does not see it)."""
    after = Payment.objects.filter(pk=payment.pk).values_list("refunded_amount", flat=True).first()
    record_changes(
        Payment, [(payment.pk, str(payment), {"refunded_amount": (after + before_offset, after)})], **what
    )


def _cancel_subscription(subscription_id: str) -> None:
    try:
        gateway.subscription_cancel(subscription_id)
    except gateway.StripeRejected as error:  # e.g. already canceled
        logger.info("subscription %s not canceled: %s", subscription_id, error.detail)
    except gateway.StripeUnavailable:
        logger.error(
            "refunded subscription %s could not be canceled at Stripe; cancel it there", subscription_id
        )


def refunds_retry_pending(*, older_than_seconds: int = 600) -> int:
    """Send again the refunds Stripe's answer never came back for (same idempotency key: Stripe
    answers the first result, or does it now); answers how many were settled."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    settled = 0
    for refund in Refund.objects.select_related("payment").filter(
        status=Refund.Status.PENDING, stripe_refund_id="", created_at__lt=cutoff
    ):
        with _as_requested(refund):
            try:
                stripe_refund = gateway.refund_create(
                    refund_id=refund.pk,
                    payment_intent_id=refund.payment.external_payment_id,
                    amount=refund.amount,
                    reason=refund.reason,
                )
            except gateway.StripeUnavailable:
                continue
            except (gateway.CardDeclined, gateway.StripeRejected) as error:
                _fail_pending(refund, str(error.detail))
                continue
            payment_refunds_sync(
                payment_intent_id=refund.payment.external_payment_id, stripe_refunds=[stripe_refund]
            )
        settled += 1
    return settled


@contextmanager
def _as_requested(refund: Refund) -> Iterator[None]:
    """A retry beat runs is recorded as the work of whoever asked for the refund, with their reason
    and the request id (audit `cid`) of the request that asked, not as "system"."""
    import structlog
    from auditlog.models import LogEntry

    asked = LogEntry.objects.get_for_object(refund).filter(action=LogEntry.Action.CREATE).first()
    request_id = asked.cid if asked is not None and asked.cid else None
    bound = structlog.contextvars.bound_contextvars(request_id=request_id) if request_id else nullcontext()
    with bound, audit_context(actor=refund.requested_by, reason=refund.reason):
        yield
