"""What the entitlement services share: the row factory, events, cache invalidation, locks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction

from entitlements import cache
from entitlements.errors import InvalidEntitlementInput
from entitlements.models import Entitlement
from entitlements.selectors import family_user_ids
from entitlements.serializers import entitlement_data
from jia_payments.core.outbox.events import record_event
from pricing import selectors as pricing_selectors

if TYPE_CHECKING:
    from pricing.models import Plan

ACTIVE = Entitlement.Status.ACTIVE
EXPIRED = Entitlement.Status.EXPIRED
CANCELLED = Entitlement.Status.CANCELLED

REASON_FEATURE_REMOVED = "feature removed from plan"
REASON_PLAN_CHANGED = "subscription changed plan"


def later(candidate: datetime | None, current: datetime | None) -> bool:
    """Is `candidate` a later end than `current` (None = never ends)?"""
    if current is None:
        return False
    return candidate is None or candidate > current


def latest_end(values: Iterable[datetime | None]) -> datetime | None:
    values = list(values)
    return None if any(v is None for v in values) else max(values)


def plan_of(plan: Plan | str) -> Plan:
    """The plan itself, or the plan with this id (400 with a `plan_id` field error if unknown)."""
    if not isinstance(plan, str):
        return plan
    found = pricing_selectors.plan_find(plan_id=plan)
    if found is None:
        raise InvalidEntitlementInput(f"Unknown plan {plan!r}.", errors={"plan_id": ["Unknown plan."]})
    return found


def create_row(
    *,
    user_id: str,
    feature_code: str,
    plan: Plan,
    family_id=None,
    subscription_id: str = "",
    payment_id=None,
    grant_id=None,
    origin: str = Entitlement.Origin.PLAN,
    granted_at: datetime | None = None,
    expires_at: datetime | None = None,
    usage_limits: dict | None = None,
    metadata: dict | None = None,
) -> Entitlement:
    """Insert one entitlement row. `usage_limits` default to the plan's, `granted_at` to now.

    No event and no invalidation here: the calling service records them once its rows are final.
    """
    fields = {"granted_at": granted_at} if granted_at is not None else {}
    return Entitlement.objects.create(
        user_id=user_id,
        feature_id=feature_code,
        plan=plan,
        family_id=family_id,
        subscription_id=subscription_id,
        payment_id=payment_id,
        grant_id=grant_id,
        origin=origin,
        expires_at=expires_at,
        usage_limits=plan.usage_limits if usage_limits is None else usage_limits,
        metadata=metadata or {},
        **fields,
    )


def emit(kind: str, entitlement: Entitlement) -> None:
    record_event(
        type=f"entitlement.{kind}",
        aggregate_id=entitlement.pk,
        subject=f"entitlements/{entitlement.pk}",
        data=entitlement_data(entitlement),
    )


def invalidate_after_commit(*, user_ids: Iterable[str] = (), family_ids: Iterable = ()) -> None:
    """After commit, drop the cache of these users and of everyone in these families.

    The families' members are read after commit, so a member added concurrently is either seen
    here or invalidated by its own add, which commits later.
    """
    user_ids = set(user_ids)
    family_ids = {f for f in family_ids if f}

    def invalidate():
        cache.invalidate_users(user_ids | family_user_ids(family_ids=family_ids))

    transaction.on_commit(invalidate, robust=True)


def invalidate_rows(rows: Iterable[Entitlement]) -> None:
    rows = list(rows)
    if rows:
        invalidate_after_commit(user_ids={r.user_id for r in rows}, family_ids={r.family_id for r in rows})
