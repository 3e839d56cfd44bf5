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
from jia_payments.core.api.errors import Conflict, DomainError, NotFound, Unprocessable
from jia_payments.core.api.validation import is_country_code
from jia_payments.core.outbox.events import record_event
from payments.models import CheckoutSession, Payment, Subscription
from payments.services import payment_ensure_status, payment_record
from payments.stripe import gateway
from payments.subscriptions import (
    AlreadySubscribed,
    buyer_lock,
    subscription_change_plan,
    subscription_claim,
    subscription_duplicate_settle_later,
    subscription_live_for_buyer,
    subscription_refuse_second,
)
from pricing.selectors import active_plan, plan_prices

logger = logging.getLogger(__name__)


def checkout_buyer(*, principal: Principal, user_id: str | None) -> str:
    """The buyer `principal` asks for: an end user buys for themself (naming anyone else is "no such
    user": other users are never revealed); a service or staff must name the buyer."""
    buyer = user_id or principal.user_id
    if not principal.may_act_for(buyer):
        raise NotFound("No such user.")
    if principal.is_privileged and not user_id:
        raise DomainError(
            "The request has invalid fields.",
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


class CheckoutSuperseded(Conflict):
    code, title = "checkout_superseded", "A newer checkout of this buyer replaced this one"


def checkout_or_change_plan(
    *, principal: Principal, plan_id: str, change_plan: bool = False, proration: str = "create_prorations",
    user_id: str | None = None, **checkout,
) -> tuple[CheckoutSession | None, Subscription | None]:  # fmt: skip
    """A checkout of `plan_id` (`checkout_session_create`), or, when the request asks to change
    plan (`change_plan`) and the buyer has a live subscription, that subscription moved to
    `plan_id` (`subscription_change_plan`, with `proration`): (session, None) or (None, changed).
    Without `change_plan`, a live subscription makes a recurring plan's checkout 409."""
    if change_plan:
        buyer = checkout_buyer(principal=principal, user_id=user_id)
        plan = active_plan(plan_id=plan_id)
        recurring = plan.billing_cycle != plan.BillingCycle.ONE_TIME
        live = subscription_live_for_buyer(buyer) if recurring else None
        if live is not None:
            changed = subscription_change_plan(subscription_id=live.pk, plan_id=plan.pk, proration=proration)
            return None, changed
    return checkout_session_create(principal=principal, plan_id=plan_id, user_id=user_id, **checkout), None


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
    `checkout_country` (`country`: asked for in the request; `edge_country`: the edge's header).

    A recurring plan's checkouts of one buyer are made one at a time (`buyer_lock`): refused
    while the buyer has a live subscription, and a new one replaces the buyer's open ones (they
    are expired at Stripe before ours is made, so two can never both be paid; one Stripe has
    already been paid for refuses ours)."""
    buyer = checkout_buyer(principal=principal, user_id=user_id)
    country, country_source = checkout_country(
        principal=principal, requested=country, edge_value=edge_country
    )
    plan = active_plan(plan_id=plan_id)
    subscription_refuse_second(user_id=buyer, plan=plan)  # before pricing: the common refusal
    if family_id is not None and not plan.is_family:
        raise Unprocessable("Only a family plan has a family.", errors={"family_id": ["Not a family plan."]})
    if plan.is_family and family_id is None:
        family_id = uuid.uuid4()  # a new family, owned by the buyer
    [quote] = plan_prices(country=country, plan_id=plan.pk)
    recurring = plan.billing_cycle != plan.BillingCycle.ONE_TIME
    with transaction.atomic():
        replaced = []
        if recurring:
            buyer_lock(buyer)
            subscription_refuse_second(user_id=buyer, plan=plan)  # again, now that it cannot change
            replaced = _replace_open_checkouts(buyer)
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
        for older in replaced:
            _expire_replaced(older)
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
        _expire_ours(session)
        raise
    with transaction.atomic():
        opened = CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
            stripe_session_id=stripe_session["id"],
            url=stripe_session.get("url") or "",
            expires_at=gateway.stripe_datetime(stripe_session.get("expires_at")),
            updated_at=timezone.now(),
        )
        session.refresh_from_db()
        if opened:
            _record(session, "checkout.session.created")
    if not opened:  # a newer checkout of the buyer replaced this one while Stripe made it
        _expire_stripe_session(stripe_session["id"])
        raise CheckoutSuperseded(f"A newer checkout of {buyer} replaced checkout {session.pk}.")
    return session


def _replace_open_checkouts(buyer: str) -> list[CheckoutSession]:
    """Under the buyer's lock: the buyer's open recurring checkouts a new one replaces. One whose
    Stripe session is not made yet is expired here (its maker then expires its Stripe session);
    the others are expired at Stripe first, by the caller, outside the transaction."""
    open_ones = list(
        CheckoutSession.objects.filter(user_id=buyer, status=CheckoutSession.Status.OPEN)
        .exclude(plan__billing_cycle="one_time")
        .select_for_update(of=("self",))  # not the plan's row: other buyers' checkouts go on
    )
    unmade = [older.pk for older in open_ones if not older.stripe_session_id]
    CheckoutSession.objects.filter(pk__in=unmade).update(
        status=CheckoutSession.Status.EXPIRED, updated_at=timezone.now()
    )
    return [older for older in open_ones if older.stripe_session_id]


def _expire_replaced(older: CheckoutSession) -> None:
    """Expire a replaced checkout at Stripe, then ours; one Stripe says is paid refuses the new one."""
    status = _expire_stripe_session(older.stripe_session_id)
    if status == "complete":
        raise AlreadySubscribed(
            f"{older.user_id} just paid checkout {older.pk} ({older.plan_id}); its subscription "
            "follows in a moment: change its plan instead."
        )
    checkout_session_expire(checkout_session_id=older.pk)


def _expire_stripe_session(stripe_session_id: str) -> str:
    """Expire a Stripe session if it is still open; answers its status at Stripe now."""
    try:
        return gateway.checkout_session_expire(stripe_session_id).get("status") or "expired"
    except gateway.StripeRejected:  # not open any more: expired already, or paid
        return gateway.checkout_session_retrieve(stripe_session_id).get("status") or ""


def _expire_ours(session: CheckoutSession) -> None:
    CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
        status=CheckoutSession.Status.EXPIRED, updated_at=timezone.now()
    )


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
    stripe_subscription: dict | None = None,
    expires_at: datetime | None = None,
) -> tuple[CheckoutSession, bool]:
    """Stripe took the money: record a completed payment, grant the plan, complete our session.
    A subscription the buyer already has another of (`stripe_subscription` as Stripe has it now)
    is a duplicate: its payment is recorded, nothing is granted, and it is canceled and refunded.

    Answers (session, completed now). A session already complete is left as it is, so a repeated
    or late event changes nothing.
    """
    subscription_id = stripe_subscription["id"] if stripe_subscription else ""
    buyer = CheckoutSession.objects.filter(pk=checkout_session_id).values_list("user_id", flat=True).first()
    if buyer is None:
        raise NotFound(f"No checkout session {checkout_session_id}.")
    with transaction.atomic():
        buyer_lock(buyer)  # first, as a new checkout of the buyer takes it (no deadlock)
        session = CheckoutSession.objects.select_for_update().get(pk=checkout_session_id)
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
        duplicate = None
        if stripe_subscription:
            claimed = subscription_claim(stripe_subscription=stripe_subscription, checkout_session=session)
            duplicate = claimed if claimed.duplicate_of_id else None
        completed = _complete(
            session,
            payment=payment,
            subscription_id=subscription_id,
            expires_at=expires_at,
            grant=duplicate is None,
        )
        if duplicate is not None:
            subscription_duplicate_settle_later(duplicate)  # its payment exists now: refund it
        return completed, True


def _complete(session, *, payment, subscription_id: str, expires_at, grant: bool = True) -> CheckoutSession:
    session.status = CheckoutSession.Status.COMPLETE
    session.payment = payment
    session.stripe_subscription_id = subscription_id
    session.save(
        update_fields=["status", "payment", "stripe_subscription_id", "stripe_session_id", "updated_at"]
    )
    if grant:
        _grant(session, payment=payment, subscription_id=subscription_id, expires_at=expires_at)
    if not session.stripe_session_id:
        _record(session, "checkout.session.created")
    _record(session, "checkout.session.completed")
    return session


def _grant(session, *, payment, subscription_id: str, expires_at) -> None:
    entitlement_services.entitlements_grant_plan(
        user_id=session.user_id,
        plan=session.plan,
        subscription_id=subscription_id,
        family_id=session.family_id,
        payment_id=payment.pk if payment else None,
        starts_at=timezone.now(),
        expires_at=expires_at,
    )


def checkout_session_expire(*, checkout_session_id) -> bool:
    """Stripe expired the session unpaid; answers whether ours was still open."""
    with transaction.atomic():
        return bool(
            CheckoutSession.objects.filter(pk=checkout_session_id, status=CheckoutSession.Status.OPEN).update(
                status=CheckoutSession.Status.EXPIRED, url="", updated_at=timezone.now()
            )
        )
