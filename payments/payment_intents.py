"""Payments charged through a Stripe PaymentIntent (`payment_method` in STRIPE_PAYMENT_METHODS).

The payment row is created first (pending); its PaymentIntent is created with our payment id as
idempotency key and in its metadata. The client confirms it with Stripe (Stripe.js and the
`client_secret`); the payment then moves only through Stripe's webhooks
(`payment_intent.succeeded` / `payment_intent.payment_failed`, `webhook_handlers`).
"""

from django.conf import settings
from django.db import transaction

from jia_payments.core.errors import Conflict, NotFound
from payments import stripe_gateway
from payments.models import Payment


def is_stripe_method(payment_method: str) -> bool:
    return payment_method in settings.STRIPE_PAYMENT_METHODS


def payment_intent_start(*, payment_id) -> dict:
    """Create (or find again: same idempotency key) the PaymentIntent of a pending payment and
    store its id; answers {"payment_intent_id", "client_secret"}."""
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    if payment.status != Payment.Status.PENDING:
        raise Conflict(f"A {payment.status} payment cannot be charged.")
    intent = stripe_gateway.payment_intent_create(
        payment_id=payment.pk,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        metadata={"customer_id": payment.customer_id, "order_id": payment.order_id},
    )
    with transaction.atomic():
        updated = Payment.objects.filter(pk=payment.pk, external_payment_id__in=["", intent["id"]]).update(
            external_payment_id=intent["id"]
        )
        if not updated:
            raise Conflict("The payment already has another PaymentIntent.")
    return {"payment_intent_id": intent["id"], "client_secret": intent.get("client_secret")}
