"""Payments charged through a Stripe PaymentIntent (`payment_method` in STRIPE_PAYMENT_METHODS).

The PaymentIntent is created first, under the new payment's id (its idempotency key, and its
metadata), then the payment row with `external_payment_id` in one transaction: a failure at Stripe
writes nothing (503, the caller tries again), and `payment.created` already names the intent.
The client confirms it with Stripe (Stripe.js and the `client_secret`); the payment then moves
only through Stripe's webhooks (`payment_intent.succeeded` / `payment_failed`, webhook_handlers).
"""

import uuid

from django.conf import settings

from payments.models import Payment
from payments.services import payment_create
from payments.stripe import gateway


def is_stripe_method(payment_method: str) -> bool:
    return payment_method in settings.STRIPE_PAYMENT_METHODS


def payment_create_with_intent(
    *,
    amount: int,
    currency: str,
    payment_method: str,
    customer_id: str,
    order_id: str = "",
    description: str = "",
    metadata: dict | None = None,
) -> tuple[Payment, str]:
    """A pending payment and its PaymentIntent; answers (payment, the intent's client_secret)."""
    payment_id = uuid.uuid4()
    intent = gateway.payment_intent_create(
        payment_id=payment_id,
        amount=amount,
        currency=currency,
        description=description,
        metadata={"customer_id": customer_id, "order_id": order_id},
    )
    payment = payment_create(
        payment_id=payment_id,
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        customer_id=customer_id,
        order_id=order_id,
        description=description,
        metadata=metadata,
        external_payment_id=intent["id"],
    )
    return payment, intent["client_secret"]
