"""Checkout: a plan bought on Stripe Checkout at the price of the buyer's country.

Who the buyer is and which country prices the plan are decided here, for every transport
(`checkout_buyer`, `checkout_country`). Our `CheckoutSession` row is written first, with the price
fixed from the zone at that moment; then Stripe's session is created (idempotency key = our row
id), outside any transaction. Stripe's `checkout.session.completed` webhook completes it: a
completed payment, the plan granted.
"""

import logging
import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from entitlements import services as entitlement_services
from jia_payments.core.api.auth import Principal
from jia_payments.core.api.errors import InvalidFields, NotFound, Unprocessable
from jia_payments.core.api.validation import is_country_code
from jia_payments.core.outbox.events import record_event
from payments.models import CheckoutSession, Payment
from payments.services import payment_ensure_status, payment_record
from payments.stripe import gateway
from payments.subscriptions import subscription_refuse_second
from pricing.selectors import active_plan, plan_prices

logger = logging.getLogger(__name__)


def checkout_buyer(*, principal: Principal, user_id: str | None) -> str:
    """The buyer `principal` asks for: an end user buys for themself (naming anyone else is "no such
    user": other users are never revealed); a service or staff must name the buyer."""
    buyer = user_id or principal.user_id
    if not principal.may_act_for(buyer):
        raise NotFound("No such user.")
    if principal.is_privileged and not user_id:
        raise InvalidFields(
            "A service or staff must name the buyer.",
            errors={"user_id": ["A service or staff must name the buyer."]},
        )
    return buyer


def checkout_country(
    *, principal: Principal, requested: str | None, edge_value: str | None
) -> tuple[str, str]:
    """(country, how it was determined). An end user's country comes from the edge's country
    header when it carries one (`edge_value`: set by the edge, not by the caller), else from the
    request; a service's or staff's from the request only (it calls from its own servers, whose
    country says nothing of the buyer's)."""
    edge = (edge_value or "").strip().upper()
    if not principal.is_privileged and is_country_code(edge):  # not Cloudflare's XX (unknown) or T1 (Tor)
        return edge, CheckoutSession.CountrySource.EDGE_HEADER
    requested = (requested or "").strip().upper()
    if requested:
        return requested, CheckoutSession.CountrySource.REQUEST
    return "", CheckoutSession.CountrySource.UNKNOWN


def checkout_data(session: CheckoutSession) -> dict:
    """The session as the API shows it (and the `data` of its events)."""
    return {
        "id": session.id,
        "url": session.url or None,
        "stripe_session_id": session.stripe_session_id or None,
        "plan_id": session.plan_id,
        "user_id": session.user_id,
        "family_id": session.family_id,
        "country": session.country or None,
        "country_source": session.country_source,
        "amount": session.amount,
        "currency": session.currency,
        "zone": session.zone or None,
        "multiplier": str(session.multiplier),
        "status": session.status,
        "payment_id": session.payment_id,
        "expires_at": session.expires_at,
        "created_at": session.created_at,
    }


def _record(session: CheckoutSession, event_type: str) -> None:
    record_event(
        type=event_type,
        aggregate_id=session.pk,
        subject=f"checkout/sessions/{session.pk}",
        data=checkout_data(session),
    )


def checkout_session_create(
    *,
    principal: Principal,
    plan_id: str,
    success_url: str,
    cancel_url: str,
    user_id: str | None = None,
    country: str | None = None,
    edge_country: str | None = None,
    family_id: uuid.UUID | None = None,
) -> CheckoutSession:
    """A checkout of `plan_id` for the buyer `principal` may name (`checkout_buyer`), priced for
    `checkout_country` (`country`: asked for in the request; `edge_country`: the edge's header)."""
    buyer = checkout_buyer(principal=principal, user_id=user_id)
    country, country_source = checkout_country(
        principal=principal, requested=country, edge_value=edge_country
    )
    plan = active_plan(plan_id=plan_id)
    subscription_refuse_second(user_id=buyer, plan=plan)
    if family_id is not None and not plan.is_family:
        raise Unprocessable("Only a family plan has a family.", errors={"family_id": ["Not a family plan."]})
    if plan.is_family and family_id is None:
        family_id = uuid.uuid4()  # a new family, owned by the buyer
    [quote] = plan_prices(country=country, plan_id=plan.pk)
    with transaction.atomic():
        session = CheckoutSession.objects.create(
            user_id=buyer,
            plan=plan,
            country=quote.country,
            country_source=country_source,
            zone=quote.zone or "",
            multiplier=quote.multiplier,
            amount=quote.price_cents,
            currency=quote.currency,
            family_id=family_id,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        if plan.is_free:  # never reaches Stripe: granted at once
            return _complete(session, payment=None, subscription_id="", expires_at=None)
    try:
        stripe_session = gateway.checkout_session_create(
            checkout_session_id=session.pk,
            billing_cycle=plan.billing_cycle,
            amount=session.amount,
            currency=session.currency,
            product_name=plan.name,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata=_stripe_metadata(session),
        )
    except Exception:
        CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
            status=CheckoutSession.Status.EXPIRED, updated_at=timezone.now()
        )
        raise
    with transaction.atomic():
        session.stripe_session_id = stripe_session["id"]
        session.url = stripe_session.get("url") or ""
        session.expires_at = gateway.stripe_datetime(stripe_session.get("expires_at"))
        session.save(update_fields=["stripe_session_id", "url", "expires_at", "updated_at"])
        _record(session, "checkout.session.created")
    return session


def _stripe_metadata(session: CheckoutSession) -> dict[str, str]:
    metadata = {
        "checkout_session_id": str(session.pk),
        "user_id": session.user_id,
        "plan_id": session.plan_id,
        "zone": session.zone,
    }
    if session.family_id:
        metadata["family_id"] = str(session.family_id)
    return metadata


def checkout_session_complete(
    *,
    checkout_session_id,
    stripe_session_id: str,
    amount_total: int,
    currency: str,
    payment_intent_id: str,
    subscription_id: str = "",
    expires_at: datetime | None = None,
) -> tuple[CheckoutSession, bool]:
    """Stripe took the money: record a completed payment, grant the plan, complete our session.

    Answers (session, completed now). A session already complete is left as it is, so a repeated
    or late event changes nothing.
    """
    with transaction.atomic():
        session = CheckoutSession.objects.select_for_update().filter(pk=checkout_session_id).first()
        if session is None:
            raise NotFound(f"No checkout session {checkout_session_id}.")
        if session.status == CheckoutSession.Status.COMPLETE:
            return session, False
        if amount_total != session.amount or currency.upper() != session.currency:
            logger.error(
                "checkout %s: Stripe charged %s %s, we priced %s %s",
                session.pk, amount_total, currency, session.amount, session.currency,
            )  # fmt: skip
        payment = payment_record(
            amount=amount_total,
            currency=currency.upper(),
            payment_method=Payment.Method.STRIPE_CHECKOUT,
            customer_id=session.user_id,
            order_id=f"checkout:{session.pk}",
            description=session.plan.name,
            external_payment_id=payment_intent_id,
            metadata={
                "checkout_session_id": str(session.pk),
                "plan_id": session.plan_id,
                "stripe_subscription_id": subscription_id,
            },
        )
        payment, _ = payment_ensure_status(payment_id=payment.pk, status=Payment.Status.COMPLETED)
        session.stripe_session_id = session.stripe_session_id or stripe_session_id
        return _complete(
            session, payment=payment, subscription_id=subscription_id, expires_at=expires_at
        ), True


def _complete(session, *, payment, subscription_id: str, expires_at) -> CheckoutSession:
    session.status = CheckoutSession.Status.COMPLETE
    session.payment = payment
    session.stripe_subscription_id = subscription_id
    session.save(
        update_fields=["status", "payment", "stripe_subscription_id", "stripe_session_id", "updated_at"]
    )
    entitlement_services.entitlements_grant_plan(
        user_id=session.user_id,
        plan=session.plan,
        subscription_id=subscription_id,
        family_id=session.family_id,
        payment_id=payment.pk if payment else None,
        starts_at=timezone.now(),
        expires_at=expires_at,
    )
    if not session.stripe_session_id:
        _record(session, "checkout.session.created")
    _record(session, "checkout.session.completed")
    return session


def checkout_session_expire(*, checkout_session_id) -> bool:
    """Stripe expired the session unpaid; answers whether ours was still open."""
    with transaction.atomic():
        return bool(
            CheckoutSession.objects.filter(pk=checkout_session_id, status=CheckoutSession.Status.OPEN).update(
                status=CheckoutSession.Status.EXPIRED, url="", updated_at=timezone.now()
            )
        )
