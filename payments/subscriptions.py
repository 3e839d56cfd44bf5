"""Subscriptions: one per buyer, changed, canceled and resumed through Stripe; access follows.

Stripe is the truth. `subscription_sync` makes our row follow a Stripe subscription as Stripe
has it now (every webhook about it re-reads it first), and access follows the row:
- active or trialing: the plan's features until the current period's end (a new plan's
  features when its metadata names another plan: the change is confirmed);
- past_due: access until the last paid period's end plus SUBSCRIPTION_GRACE_DAYS;
- unpaid, incomplete_expired: access ends now; canceled: at the current period's end (a cancel
  at the period's end) or now, for a cancel asked for here with `at_period_end=False`.
  unpaid, incomplete_expired: access ends now; canceled: when Stripe ended it (`ended_at`: the
  period's end for a cancel at the period's end, now for a cancel now, also one made in Stripe's
  dashboard or the billing portal).
All of it is derived from Stripe's current state, so a duplicate or late event changes nothing.
Each change of the row records one event: `subscription.payment_failed` (into past_due),
`subscription.canceled` (into canceled) or `subscription.updated`.

One subscription per buyer (the user, or a family plan's owner): checkouts of one buyer are
serialised (`buyer_lock`), a live second row cannot exist (a partial unique index), and a second
subscription Stripe still made (two checkouts paid at once, or opened before the rule) is a
duplicate: its row names the kept one (`duplicate_of`), it grants nothing, and it is canceled at
Stripe and its payment refunded (`subscription_duplicate_settle`, a task after the commit). The
duplicates found in the data when the rule came are left to staff (`settled_by_staff`).
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from entitlements import services as entitlement_services
from jia_payments.core.api.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from jia_payments.core.audit.trail import audit_context
from jia_payments.core.locks import advisory_lock
from jia_payments.core.outbox.events import record_event
from payments.models import CheckoutSession, Payment, Refund, Subscription
from payments.refunds import payment_refund, refund_left
from payments.selectors import checkout_session_find_for_subscription
from payments.stripe import gateway
from pricing.selectors import active_plan, plan_find, plan_prices

logger = logging.getLogger(__name__)

S = Subscription.Status
PRORATIONS = ("create_prorations", "none")
API_FIELDS = (
    "id", "user_id", "family_id", "plan_id", "status", "current_period_end", "cancel_at_period_end",
    "country", "amount", "currency", "stripe_subscription_id", "created_at", "updated_at",
)  # fmt: skip


class AlreadySubscribed(Conflict):
    code, title = "already_subscribed", "Already subscribed"


def subscription_data(subscription: Subscription) -> dict:
    """The subscription as the API shows it (and the `data` of its events)."""
    return {field: getattr(subscription, field) for field in API_FIELDS}


def _record(subscription: Subscription, event_type: str) -> None:
    record_event(
        type=event_type,
        aggregate_id=subscription.pk,
        subject=f"subscriptions/{subscription.pk}",
        data=subscription_data(subscription),
    )


def _grace() -> timedelta:
    return timedelta(days=settings.SUBSCRIPTION_GRACE_DAYS)


# --- rules other services ask --------------------------------------------------------------


def buyer_lock(user_id: str) -> None:
    """Inside a transaction: what a buyer starts or is given (a checkout, a subscription row)
    happens one at a time per buyer, until the transaction ends."""
    advisory_lock(f"payments.buyer:{user_id}")


def subscription_live_for_buyer(user_id: str) -> Subscription | None:
    return (
        Subscription.objects.filter(user_id=user_id, status__in=Subscription.LIVE, duplicate_of=None)
        .order_by("-created_at")
        .first()
    )


def subscription_refuse_second(*, user_id: str, plan) -> None:
    """A checkout for a recurring plan while the buyer has a live subscription is 409 (unless
    the request asks to change plan: `payments.checkout.checkout_or_change_plan`)."""
    if plan.billing_cycle == plan.BillingCycle.ONE_TIME:
        return
    live = subscription_live_for_buyer(user_id)
    if live is not None:
        raise AlreadySubscribed(
            f"{user_id} already has subscription {live.pk} ({live.plan_id}, {live.status}): "
            f"ask for the checkout with change_plan=true, or POST /api/v1/subscriptions/{live.pk}/change/."
        )


# --- following Stripe ----------------------------------------------------------------------


def _stripe_state(stripe_subscription: dict) -> dict:
    items = (stripe_subscription.get("items") or {}).get("data") or [{}]
    item = items[0]
    price = item.get("price") or {}
    status = stripe_subscription["status"]
    start = gateway.stripe_datetime(
        item.get("current_period_start") or stripe_subscription.get("current_period_start")
    )
    end = gateway.stripe_datetime(gateway.subscription_period_end(stripe_subscription))
    if status in (S.ACTIVE, S.TRIALING):
        paid_through = end
    elif status in (S.PAST_DUE, S.UNPAID, S.INCOMPLETE):
        paid_through = start  # the current period's invoice is what is unpaid
    else:
        paid_through = None  # kept as it was
    return {
        "status": status,
        "current_period_start": start,
        "current_period_end": end,
        "paid_through": paid_through,
        "cancel_at_period_end": bool(stripe_subscription.get("cancel_at_period_end")),
        "canceled_at": gateway.stripe_datetime(stripe_subscription.get("canceled_at")),
        "ended_at": gateway.stripe_datetime(stripe_subscription.get("ended_at")),
        "amount": (price.get("unit_amount") or 0) * (item.get("quantity") or 1),
        "stripe_customer_id": stripe_subscription.get("customer") or "",
        "stripe_item_id": item.get("id") or "",
    }


def subscription_sync(*, stripe_subscription: dict) -> Subscription | None:
    """Make our row (and the access it grants) follow Stripe's subscription as it is now.
    None: not a subscription bought through our checkout."""
    metadata = stripe_subscription.get("metadata") or {}
    session = checkout_session_find_for_subscription(
        subscription_id=stripe_subscription["id"], metadata=metadata
    )
    if session is None:
        logger.warning("subscription %s is not one of ours; ignored", stripe_subscription["id"])
        return None
    state = _stripe_state(stripe_subscription)
    plan_id = metadata.get("plan_id") or session.plan_id
    with transaction.atomic():
        # The buyer, then the checkout's row, as its completion and a new checkout lock them:
        # events of one buyer processed at once wait here in turn instead of deadlocking.
        buyer_lock(session.user_id)
        session = CheckoutSession.objects.select_for_update().get(pk=session.pk)
        subscription = _locked_or_created(stripe_subscription, session, state, plan_id)
        before = _comparable(subscription)
        status_before = subscription.status
        for field, value in state.items():
            if field == "paid_through" and value is None:
                continue
            setattr(subscription, field, value)
        if plan_id != subscription.plan_id and plan_find(plan_id=plan_id) is not None:
            subscription.plan_id = plan_id
        if metadata.get("family_id"):
            subscription.family_id = uuid.UUID(metadata["family_id"])
        if subscription.pending_plan_id == subscription.plan_id:
            subscription.pending_plan = None
        if _comparable(subscription) != before:  # a repeated or stale event changes nothing
            subscription.save()
            _record(subscription, _event_type(status_before, subscription.status))
        if session.status == CheckoutSession.Status.COMPLETE and subscription.duplicate_of_id is None:
            _follow_with_access(subscription)  # else its completion grants (a duplicate: nothing)
    return subscription


def subscription_claim(*, stripe_subscription: dict, checkout_session: CheckoutSession) -> Subscription:
    """Inside a transaction: our row of the subscription `checkout_session` made, created if need
    be under the buyer's lock; a duplicate (`duplicate_of`) when the buyer has another live one."""
    metadata = stripe_subscription.get("metadata") or {}
    plan_id = metadata.get("plan_id") or checkout_session.plan_id
    state = _stripe_state(stripe_subscription)
    return _locked_or_created(stripe_subscription, checkout_session, state, plan_id)


def _comparable(subscription: Subscription) -> dict:
    fields = [f.attname for f in Subscription._meta.concrete_fields if f.attname != "updated_at"]
    return {name: getattr(subscription, name) for name in fields}


def _locked_or_created(stripe_subscription, session, state, plan_id) -> Subscription:
    found = (
        Subscription.objects.select_for_update()
        .filter(stripe_subscription_id=stripe_subscription["id"])
        .first()
    )
    if found is not None:
        return found
    currency = (stripe_subscription.get("currency") or session.currency).upper()
    buyer_lock(session.user_id)
    kept = (
        Subscription.objects.filter(user_id=session.user_id, status__in=Subscription.LIVE, duplicate_of=None)
        .exclude(stripe_subscription_id=stripe_subscription["id"])
        .first()
    )
    try:
        with transaction.atomic():
            created = Subscription.objects.create(
                user_id=session.user_id,
                family_id=session.family_id,
                plan_id=plan_id if plan_find(plan_id=plan_id) is not None else session.plan_id,
                status=S.INCOMPLETE,
                country=session.country,
                zone=session.zone,
                amount=state["amount"] or session.amount,
                currency=currency,
                stripe_subscription_id=stripe_subscription["id"],
                checkout_session=session,
                duplicate_of=kept,
            )
    except IntegrityError:  # created at this moment by another event of the same subscription
        return Subscription.objects.select_for_update().get(stripe_subscription_id=stripe_subscription["id"])
    if kept is not None:
        _duplicate_found(created)
    return created


def _duplicate_found(duplicate: Subscription) -> None:
    """Stripe made a second subscription for a buyer who has one: it is canceled at Stripe and
    its payment refunded after the commit (Stripe is never called inside a transaction)."""
    logger.error(
        "subscription %s of %s duplicates %s: canceling it at Stripe and refunding it",
        duplicate.stripe_subscription_id, duplicate.user_id, duplicate.duplicate_of_id,
    )  # fmt: skip
    _record(duplicate, "subscription.duplicate_canceled")
    subscription_duplicate_settle_later(duplicate)


def subscription_duplicate_settle_later(duplicate: Subscription) -> None:
    from payments.tasks import settle_duplicate_subscription

    pk = duplicate.pk
    transaction.on_commit(lambda: settle_duplicate_subscription.delay(str(pk)))


def _event_type(status_before: str, status: str) -> str:
    if status != status_before and status == S.PAST_DUE:
        return "subscription.payment_failed"
    if status != status_before and status == S.CANCELED:
        return "subscription.canceled"
    return "subscription.updated"


def _follow_with_access(subscription: Subscription) -> None:
    sub_id = subscription.stripe_subscription_id
    if subscription.status in (S.ACTIVE, S.TRIALING):
        entitlement_services.entitlements_grant_plan(
            user_id=subscription.user_id,
            plan=subscription.plan,
            subscription_id=sub_id,
            family_id=subscription.family_id,
            expires_at=subscription.paid_through,
        )
    elif subscription.status == S.PAST_DUE and subscription.paid_through:
        entitlement_services.entitlements_set_subscription_end(
            subscription_id=sub_id, expires_at=subscription.paid_through + _grace(), reason="payment failed"
        )
    elif subscription.status in (S.UNPAID, S.INCOMPLETE_EXPIRED):
        entitlement_services.entitlements_cancel_for_subscription(
            subscription_id=sub_id, reason=f"subscription {subscription.status}"
        )
    elif subscription.status == S.CANCELED:
        entitlement_services.entitlements_cancel_for_subscription(
            subscription_id=sub_id, reason="subscription_canceled", at=_access_end(subscription)
        )


def _access_end(canceled: Subscription):
    """A canceled subscription's access ends when Stripe ended it: at the period's end for a
    cancel at the period's end, now for a cancel now (ours, the dashboard's, the portal's)."""
    ends = [at for at in (canceled.ended_at, canceled.current_period_end) if at is not None]
    return min(ends) if ends else None


# --- what callers ask for ------------------------------------------------------------------


def _live(subscription_id) -> Subscription:
    subscription = Subscription.objects.select_related("plan").filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("No such subscription.")
    if subscription.status not in (S.ACTIVE, S.TRIALING, S.PAST_DUE):
        raise InvalidTransition(f"Subscription {subscription.pk} is {subscription.status}.")
    return subscription


def subscription_change_plan(
    *, subscription_id, plan_id: str, proration: str = "create_prorations"
) -> Subscription:
    """Move the Stripe subscription to `plan_id`'s zone price for the buyer's country (as at
    checkout); our plan and the access change when Stripe confirms."""
    if proration not in PRORATIONS:
        raise Unprocessable("Unknown proration.", errors={"proration": [f"One of {', '.join(PRORATIONS)}."]})
    subscription = _live(subscription_id)
    plan = active_plan(plan_id=plan_id)
    if plan.pk == subscription.plan_id:
        raise Unprocessable(
            "The subscription is already on this plan.", errors={"plan_id": ["The current plan."]}
        )
    if plan.billing_cycle != subscription.plan.billing_cycle:
        raise Unprocessable(
            "Change to a plan of the same billing cycle.",
            errors={"plan_id": [f"Not a {subscription.plan.billing_cycle} plan."]},
        )
    [quote] = plan_prices(country=subscription.country, plan_id=plan.pk)
    if quote.currency != subscription.currency:
        raise Unprocessable(
            "The new plan is priced in another currency.", errors={"plan_id": ["Other currency."]}
        )
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        locked.pending_plan = plan
        locked.changes += 1
        if plan.is_family and locked.family_id is None:
            locked.family_id = uuid.uuid4()  # a new family, owned by the buyer
        locked.save(update_fields=["pending_plan", "changes", "family_id", "updated_at"])
    metadata = {"plan_id": plan.pk, "zone": locked.zone}
    if plan.is_family:
        metadata["family_id"] = str(locked.family_id)
    stripe_subscription = gateway.subscription_change_price(
        subscription_id=locked.stripe_subscription_id,
        item_id=locked.stripe_item_id,
        change_key=f"{locked.pk}:{locked.changes}",
        amount=quote.price_cents,
        currency=quote.currency,
        billing_cycle=plan.billing_cycle,
        product_name=plan.name,
        plan_id=plan.pk,
        proration=proration,
        metadata=metadata,
    )
    return subscription_sync(stripe_subscription=stripe_subscription)


def subscription_cancel(*, subscription_id, at_period_end: bool = True, reason: str = "") -> Subscription:
    """At the period's end: access lasts until then. Now: access ends now (nothing is refunded)."""
    subscription = _live(subscription_id)
    if at_period_end:
        stripe_subscription = gateway.subscription_set_cancel_at_period_end(
            subscription.stripe_subscription_id, True
        )
        return subscription_sync(stripe_subscription=stripe_subscription)
    stripe_subscription = gateway.subscription_cancel(subscription.stripe_subscription_id)
    with transaction.atomic():
        synced = subscription_sync(stripe_subscription=stripe_subscription)
        entitlement_services.entitlements_cancel_for_subscription(
            subscription_id=subscription.stripe_subscription_id, reason=reason or "subscription canceled now"
        )
    return synced


def subscription_resume(*, subscription_id) -> Subscription:
    """Undo a cancel at the period's end, before the period ends."""
    subscription = _live(subscription_id)
    if not subscription.cancel_at_period_end:
        raise InvalidTransition(f"Subscription {subscription.pk} is not set to cancel.")
    stripe_subscription = gateway.subscription_set_cancel_at_period_end(
        subscription.stripe_subscription_id, False
    )
    return subscription_sync(stripe_subscription=stripe_subscription)


DUPLICATE_ACTOR = "system:duplicate-subscription"


class LeftToStaff(InvalidTransition):
    code, title = "left_to_staff", "Left to staff"


def subscription_duplicate_settle(*, subscription_id, by_staff: str = "") -> Subscription:
    """A duplicate subscription is canceled at Stripe now and what it was paid is refunded in
    full. One left to staff (`settled_by_staff`) only on a staff decision: `by_staff` names who
    decided. Stripe is called outside any transaction; run again, it changes nothing more."""
    duplicate = Subscription.objects.exclude(duplicate_of=None).filter(pk=subscription_id).first()
    if duplicate is None:
        raise NotFound("No such duplicate subscription.")
    if duplicate.settled_by_staff and not by_staff:
        raise LeftToStaff(f"Duplicate subscription {duplicate.pk} is left to staff.")
    reason = f"duplicate of subscription {duplicate.duplicate_of_id}"
    actor = by_staff or DUPLICATE_ACTOR
    with audit_context(actor=actor, reason=reason):
        if duplicate.status != S.CANCELED:
            try:
                stripe_subscription = gateway.subscription_cancel(duplicate.stripe_subscription_id)
            except gateway.StripeRejected:  # canceled there already
                stripe_subscription = gateway.subscription_retrieve(duplicate.stripe_subscription_id)
            duplicate = subscription_sync(stripe_subscription=stripe_subscription) or duplicate
        for payment in _refundable_payments(duplicate):
            payment_refund(payment_id=payment.pk, amount=None, reason=reason, requested_by=actor)
        # A refund an earlier try left pending (Stripe did not answer) is sent again under its own
        # id, Stripe's idempotency key: this task's backoff retries it, not reconciliation's sweep.
        for refund in _unanswered_refunds(duplicate):
            payment_refund(
                payment_id=refund.payment_id,
                amount=None,
                reason=reason,
                requested_by=DUPLICATE_ACTOR,
                refund_id=refund.pk,
            )
    return duplicate


def _refundable_payments(duplicate: Subscription) -> list[Payment]:
    paid = Payment.objects.filter(
        metadata__stripe_subscription_id=duplicate.stripe_subscription_id, status=Payment.Status.COMPLETED
    )
    return [payment for payment in paid if refund_left(payment) > 0]


def _unanswered_refunds(duplicate: Subscription) -> list[Refund]:
    return list(
        Refund.objects.filter(
            payment__metadata__stripe_subscription_id=duplicate.stripe_subscription_id,
            requested_by=DUPLICATE_ACTOR,
            status=Refund.Status.PENDING,
            stripe_refund_id="",
        )
    )


def subscriptions_settle_duplicates() -> int:
    """Reconciliation: settle again the duplicates still live at Stripe or not refunded (their
    task failed every try), not those left to staff; answers how many were settled."""
    settled = 0
    for duplicate in Subscription.objects.exclude(duplicate_of=None).filter(settled_by_staff=False):
        if duplicate.status == S.CANCELED and not _refundable_payments(duplicate):
            continue
        try:
            subscription_duplicate_settle(subscription_id=duplicate.pk)
            settled += 1
        except (gateway.StripeUnavailable, gateway.StripeRejected) as error:
            logger.warning("duplicate subscription %s not settled yet: %s", duplicate.pk, error)
    return settled


def billing_portal_session_create(*, user_id: str, return_url: str) -> str:
    """The URL of a Stripe Billing Portal session for the user's Stripe customer."""
    subscription = (
        Subscription.objects.filter(user_id=user_id)
        .exclude(stripe_customer_id="")
        .order_by("-created_at")
        .first()
    )
    if subscription is None:
        raise NotFound("This user has no Stripe customer yet (no subscription).")
    return gateway.billing_portal_session_create(
        customer_id=subscription.stripe_customer_id, return_url=return_url
    )["url"]
