"""The only module that talks to Stripe.

Every call goes through the official SDK's `StripeClient` (configured from settings on each call,
so a test's settings apply), answers plain dicts, and turns the SDK's errors into domain errors:
a declined card is the caller's problem (402), Stripe being unreachable or failing is "try again
later" (503, and a Celery task retries it), a request Stripe refuses is a 422 naming Stripe's code.
Idempotency keys are derived from our own row ids, so a retried call can never charge, refund or
create twice.
"""

import functools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import stripe
from django.conf import settings

from jia_payments.core.api.errors import DomainError, ServiceUnavailable

logger = logging.getLogger(__name__)

INTERVALS = {"monthly": "month", "yearly": "year"}  # Plan.billing_cycle -> Stripe recurring interval


class CardDeclined(DomainError):
    status, code, title = 402, "card_declined", "The card was declined"


class StripeUnavailable(ServiceUnavailable):
    """Stripe could not be reached or failed; the same call may succeed later."""

    code, title = "stripe_unavailable", "The payment provider is unavailable"


class StripeRejected(DomainError):
    """Stripe refused the request as invalid (e.g. refunding more than is left)."""

    status, code, title = 422, "stripe_rejected", "The payment provider refused the request"

    def __init__(self, detail: str | None = None, *, stripe_code: str | None = None):
        super().__init__(detail)
        self.stripe_code = stripe_code or ""


@contextmanager
def _translated_errors(action: str):
    try:
        yield
    except stripe.CardError as error:
        raise CardDeclined(error.user_message or "The card was declined.") from error
    except stripe.IdempotencyError as error:
        logger.error("stripe idempotency conflict on %s: %s", action, error.user_message)
        raise StripeRejected(error.user_message, stripe_code="idempotency_error") from error
    except stripe.InvalidRequestError as error:
        raise StripeRejected(error.user_message, stripe_code=error.code) from error
    except (stripe.AuthenticationError, stripe.PermissionError) as error:
        logger.error("stripe refused our credentials on %s: %s", action, error.user_message)
        raise StripeUnavailable("The payment provider is not configured correctly.") from error
    except stripe.StripeError as error:  # connection, rate limit, Stripe's own 5xx
        logger.warning("stripe unavailable on %s: %r", action, error)
        raise StripeUnavailable() from error


@functools.cache
def _client_for(api_key: str, api_base: str, retries: int, timeout: float) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _client() -> stripe.StripeClient:
    return _client_for(
        settings.STRIPE_SECRET,
        settings.STRIPE_API_BASE,
        settings.STRIPE_MAX_NETWORK_RETRIES,
        settings.STRIPE_TIMEOUT_SECONDS,
    )


def _key(kind: str, row_id) -> dict:
    return {"idempotency_key": f"jia-payments:{kind}:{row_id}"}


def _plain(obj) -> dict:
    """The object as Stripe's JSON: the SDK parses decimal strings (`unit_amount_decimal`) into
    Decimal, which Stripe sends, and we store, as strings."""
    return json.loads(json.dumps(obj.to_dict(), default=_decimal_as_string))


def _decimal_as_string(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- account ------------------------------------------------------------------------------


def account_retrieve() -> dict:
    with _translated_errors("account retrieve"):
        return _plain(_client().v1.accounts.retrieve_current())


# --- checkout -----------------------------------------------------------------------------


def checkout_session_create(
    *,
    checkout_session_id,
    billing_cycle: str,
    amount: int,
    currency: str,
    product_name: str,
    success_url: str,
    cancel_url: str,
    metadata: dict[str, str],
) -> dict:
    """A hosted Checkout Session for one plan at a price we fixed (inline `price_data`: no Stripe
    Price objects need to exist). One-time plans are `payment` mode, the others `subscription`."""
    interval = INTERVALS.get(billing_cycle)
    price_data = {
        "currency": currency.lower(),
        "unit_amount": amount,
        "product_data": {"name": product_name, "metadata": {"plan_id": metadata.get("plan_id", "")}},
    }
    params = {
        "mode": "subscription" if interval else "payment",
        "line_items": [{"quantity": 1, "price_data": price_data}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(checkout_session_id),
        "metadata": metadata,
    }
    if interval:
        price_data["recurring"] = {"interval": interval}
        params["subscription_data"] = {"metadata": metadata}
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    with _translated_errors("checkout session create"):
        session = _client().v1.checkout.sessions.create(
            params=params, options=_key("checkout-session", checkout_session_id)
        )
    return _plain(session)


def checkout_session_retrieve(stripe_session_id: str) -> dict:
    with _translated_errors("checkout session retrieve"):
        return _plain(_client().v1.checkout.sessions.retrieve(stripe_session_id))


def checkout_session_expire(stripe_session_id: str) -> dict:
    with _translated_errors("checkout session expire"):
        return _plain(_client().v1.checkout.sessions.expire(stripe_session_id))


# --- payment intents and refunds ----------------------------------------------------------


def payment_intent_create(
    *, payment_id, amount: int, currency: str, description: str, metadata: dict
) -> dict:
    params = {
        "amount": amount,
        "currency": currency.lower(),
        "description": description,
        "metadata": {**metadata, "payment_id": str(payment_id)},
    }
    with _translated_errors("payment intent create"):
        intent = _client().v1.payment_intents.create(
            params=params, options=_key("payment-intent", payment_id)
        )
    return _plain(intent)


def payment_intent_retrieve(payment_intent_id: str) -> dict:
    with _translated_errors("payment intent retrieve"):
        return _plain(_client().v1.payment_intents.retrieve(payment_intent_id))


STRIPE_REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


def refund_create(*, refund_id, payment_intent_id: str, amount: int, reason: str) -> dict:
    """Refund `amount` of a PaymentIntent. Our reason goes into metadata (Stripe's `reason` takes
    only its three words), with our refund id so its webhook finds our row."""
    params = {
        "payment_intent": payment_intent_id,
        "amount": amount,
        "metadata": {"refund_id": str(refund_id), "reason": reason[:500]},
    }
    if reason in STRIPE_REFUND_REASONS:
        params["reason"] = reason
    with _translated_errors("refund create"):
        refund = _client().v1.refunds.create(params=params, options=_key("refund", refund_id))
    return _plain(refund)


def refunds_list(payment_intent_id: str) -> list[dict]:
    with _translated_errors("refunds list"):
        page = _client().v1.refunds.list(params={"payment_intent": payment_intent_id, "limit": 100})
        return [_plain(refund) for refund in page.auto_paging_iter()]


# --- subscriptions and invoices -----------------------------------------------------------


def subscription_retrieve(subscription_id: str) -> dict:
    with _translated_errors("subscription retrieve"):
        return _plain(_client().v1.subscriptions.retrieve(subscription_id))


def subscription_cancel(subscription_id: str) -> dict:
    with _translated_errors("subscription cancel"):
        return _plain(_client().v1.subscriptions.cancel(subscription_id))


def invoice_retrieve(invoice_id: str) -> dict:
    with _translated_errors("invoice retrieve"):
        return _plain(_client().v1.invoices.retrieve(invoice_id, params={"expand": ["payments"]}))


def invoice_payment_intent_id(invoice: dict) -> str:
    """The PaymentIntent that paid an invoice: `payments` since API 2025-03-31, before that a
    top-level `payment_intent`."""
    for payment in (invoice.get("payments") or {}).get("data") or []:
        if payment.get("status") == "paid" and (payment.get("payment") or {}).get("payment_intent"):
            return payment["payment"]["payment_intent"]
    return invoice.get("payment_intent") or ""


def stripe_datetime(unix_time: int | None) -> datetime | None:
    """A time as Stripe sends it (unix seconds; null or 0 for none) as an aware UTC datetime."""
    return datetime.fromtimestamp(unix_time, tz=UTC) if unix_time else None


def subscription_period_end(subscription: dict) -> int | None:
    """The end of the current period: on the items since API 2025-03-31, top-level before."""
    items = (subscription.get("items") or {}).get("data") or []
    ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
    return max(ends) if ends else subscription.get("current_period_end")


# --- events -------------------------------------------------------------------------------


def events_since(*, created_gte: int, types: list[str]) -> Iterator[dict]:
    """Every event of `types` created at or after `created_gte` (unix time), newest first."""
    params = {"created": {"gte": created_gte}, "limit": 100}
    if types:
        params["types"] = sorted(types)
    with _translated_errors("events list"):
        for event in _client().v1.events.list(params=params).auto_paging_iter():
            yield _plain(event)
