"""Our handler for each Stripe event type: the one dispatch table.

Each handler gets the event's object and works in two steps (`payments.stripe.events.stripe_event_process`):
it reads what it needs from Stripe, outside any database transaction or row lock (network time
holds no lock), and returns the change to make, a function that the caller runs inside the
transaction that marks the event processed (or None: nothing to change). A retry reads Stripe
again; nothing is applied until the reads succeeded. Where the order of events matters, a handler
re-reads the object from Stripe and acts on its current state, so events arriving out of order
(a renewal before the purchase, an `updated` before its `created`) converge to Stripe's state.
Handlers only read from Stripe; every change they make is ours, through services.
"""

import logging
from collections.abc import Callable

from payments.checkout import checkout_session_complete, checkout_session_expire
from payments.models import Payment
from payments.refunds import payment_refunds_sync
from payments.selectors import (
    checkout_session_find,
    checkout_session_find_for_subscription,
    payment_find_for_intent,
)
from payments.services import payment_ensure_status, payment_record
from payments.stripe import gateway
from payments.subscriptions import subscription_sync

logger = logging.getLogger(__name__)

Change = Callable[[], None] | None  # what a handler returns: the change to apply, or nothing


def on_checkout_session_completed(obj: dict) -> Change:
    """Also `checkout.session.async_payment_succeeded`: the money arrived later."""
    session = gateway.checkout_session_retrieve(obj["id"])
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return None  # an asynchronous payment method: wait for async_payment_succeeded
    ours = checkout_session_find(checkout_session_id=session.get("client_reference_id"))
    if ours is None:
        logger.warning("checkout session %s is not one of ours; ignored", session["id"])
        return None
    subscription_id = session.get("subscription") or ""
    expires_at = subscription = None
    if subscription_id:
        subscription = gateway.subscription_retrieve(subscription_id)
        expires_at = gateway.stripe_datetime(gateway.subscription_period_end(subscription))
        invoice = gateway.invoice_retrieve(session["invoice"]) if session.get("invoice") else {}
        payment_intent_id = gateway.invoice_payment_intent_id(invoice)
    else:
        payment_intent_id = session.get("payment_intent") or ""

    def apply() -> None:
        checkout_session_complete(
            checkout_session_id=ours.pk,
            stripe_session_id=session["id"],
            amount_total=session["amount_total"],
            currency=session["currency"],
            payment_intent_id=payment_intent_id,
            stripe_subscription=subscription,
            expires_at=expires_at,
        )
        if subscription_id:  # later events may have been applied first: follow Stripe's state now
            subscription_sync(stripe_subscription=subscription)

    return apply


def on_checkout_session_expired(obj: dict) -> Change:
    ours = checkout_session_find(checkout_session_id=obj.get("client_reference_id"))
    if ours is None:
        return None
    return lambda: checkout_session_expire(checkout_session_id=ours.pk)


def on_payment_intent_changed(obj: dict) -> Change:
    """`payment_intent.succeeded` and `payment_intent.payment_failed`: our payment follows the
    PaymentIntent's current state (a failure event can arrive after a later success)."""
    payment = payment_find_for_intent(payment_intent_id=obj["id"])
    if payment is None:
        return None  # not a PaymentIntent of ours, or one Checkout made (its session completes it)
    intent = gateway.payment_intent_retrieve(obj["id"])
    if intent["status"] == "succeeded":
        return lambda: payment_ensure_status(payment_id=payment.pk, status=Payment.Status.COMPLETED)
    if intent["status"] == "canceled":
        return lambda: payment_ensure_status(payment_id=payment.pk, status=Payment.Status.CANCELLED)
    if intent["status"] == "requires_payment_method" and intent.get("last_payment_error"):
        error = intent["last_payment_error"]
        reason = error.get("message") or error.get("code") or "payment failed"
        return lambda: payment_ensure_status(
            payment_id=payment.pk,
            status=Payment.Status.FAILED,
            failure_reason=reason,
            failure_code=error.get("decline_code") or error.get("code") or "",
        )
    return None


def on_charge_refunded(obj: dict) -> Change:
    payment_intent_id = obj.get("payment_intent") or ""
    if payment_find_for_intent(payment_intent_id=payment_intent_id) is None:
        return None
    stripe_refunds = gateway.refunds_list(payment_intent_id)
    return lambda: payment_refunds_sync(payment_intent_id=payment_intent_id, stripe_refunds=stripe_refunds)


def on_subscription_changed(obj: dict) -> Change:
    """`customer.subscription.created|updated|deleted` and `invoice.payment_failed`: our
    subscription, and the access it grants, follow Stripe's subscription as it is now."""
    subscription_id = obj["id"] if obj.get("object") == "subscription" else _invoice_subscription_id(obj)
    if not subscription_id:
        return None
    subscription = gateway.subscription_retrieve(subscription_id)
    return lambda: subscription_sync(stripe_subscription=subscription)


def on_invoice_paid(obj: dict) -> Change:
    """A paid renewal (or a recovered past_due invoice): record its payment; access follows."""
    invoice = gateway.invoice_retrieve(obj["id"])
    subscription_id = _invoice_subscription_id(invoice)
    if not subscription_id:
        return None
    subscription = gateway.subscription_retrieve(subscription_id)
    renewal = invoice.get("billing_reason") != "subscription_create"  # the first is the checkout's payment

    def apply() -> None:
        if renewal:
            _record_renewal_payment(invoice, subscription)
        subscription_sync(stripe_subscription=subscription)

    return apply


def _invoice_subscription_id(invoice: dict) -> str:
    return invoice.get("subscription") or (
        ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )


def _record_renewal_payment(invoice: dict, subscription: dict) -> None:
    payment_intent_id = gateway.invoice_payment_intent_id(invoice)
    if not payment_intent_id or payment_find_for_intent(payment_intent_id=payment_intent_id) is not None:
        return
    ours = checkout_session_find_for_subscription(
        subscription_id=subscription["id"], metadata=subscription.get("metadata")
    )
    if ours is None:
        logger.warning("paid invoice %s of a subscription %s not ours", invoice["id"], subscription["id"])
        return
    payment = payment_record(
        amount=invoice["amount_paid"],
        currency=invoice["currency"].upper(),
        payment_method=Payment.Method.STRIPE_CHECKOUT,
        customer_id=ours.user_id,
        order_id=f"invoice:{invoice['id']}",
        description=f"{ours.plan.name} renewal",
        external_payment_id=payment_intent_id,
        metadata={
            "checkout_session_id": str(ours.pk),
            "plan_id": ours.plan_id,
            "stripe_subscription_id": subscription["id"],
        },
    )
    payment_ensure_status(payment_id=payment.pk, status=Payment.Status.COMPLETED)


HANDLERS = {
    "checkout.session.completed": on_checkout_session_completed,
    "checkout.session.async_payment_succeeded": on_checkout_session_completed,
    "checkout.session.expired": on_checkout_session_expired,
    "payment_intent.succeeded": on_payment_intent_changed,
    "payment_intent.payment_failed": on_payment_intent_changed,
    "payment_intent.canceled": on_payment_intent_changed,
    "charge.refunded": on_charge_refunded,
    "customer.subscription.created": on_subscription_changed,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_subscription_changed,
}
