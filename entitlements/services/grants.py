"""Grants from a plan, and what a subscription or payment does to them later: renewals, plan
changes, cancellations. The interface the checkout and the Stripe webhooks use."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from entitlements.errors import FamilyOwnerMismatch
from entitlements.models import Entitlement, Family, FamilyMember
from entitlements.services._shared import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    REASON_PLAN_CHANGED,
    create_row,
    emit,
    invalidate_rows,
    later,
    latest_end,
    plan_of,
)
from entitlements.services.families import family_seats_fit
from jia_payments.core.locks import advisory_lock
from pricing import selectors as pricing_selectors

if TYPE_CHECKING:
    from pricing.models import Plan


def entitlements_grant_plan(
    *,
    user_id: str,
    plan: Plan | str,
    subscription_id: str = "",
    family_id=None,
    payment_id=None,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    grant_id=None,
    lifetime: bool = False,
) -> list[Entitlement]:
    """Grant one entitlement per feature of `plan`; returns the plan's rows.

    Idempotent per plan grant, else per subscription, else per payment, else per user and plan
    (`lifetime`: no end, whatever the billing cycle): a retry of the same
    period creates and changes nothing; a later period (renewal) extends `expires_at` of the
    existing rows, reactivating them, instead of adding rows; the same period with another plan
    (upgrade) moves the rows to it, adds its new features and cancels the ones it lacks.
    `expires_at` defaults to `starts_at` (default now) plus one billing period, None for one_time.
    A family plan (max_users > 1) creates the Family, owned by `user_id`, or reuses `family_id`.
    """
    plan = plan_of(plan)
    now = timezone.now()
    starts_at = starts_at or now
    if expires_at is None and not lifetime:
        expires_at = pricing_selectors.plan_period_end(billing_cycle=plan.billing_cycle, starts_at=starts_at)
    features = pricing_selectors.plan_feature_codes(plan=plan)

    if grant_id:
        key, existing_q = f"grant:{grant_id}", {"grant_id": grant_id}
    elif subscription_id:
        key, existing_q = f"sub:{subscription_id}", {"subscription_id": subscription_id}
    elif payment_id:
        key, existing_q = f"pay:{payment_id}", {"payment_id": payment_id}
    else:
        key = f"user:{user_id}:{plan.pk}:{family_id or ''}"
        existing_q = {"user_id": user_id, "subscription_id": "", "payment_id": None, "grant_id": None}
        existing_q["status"] = ACTIVE
        existing_q.update({"family_id": family_id} if family_id else {"plan": plan})

    with transaction.atomic():
        advisory_lock(f"entitlements.grant:{key}")
        existing = list(Entitlement.objects.select_for_update().filter(**existing_q).order_by("granted_at"))
        family = _grant_family(plan, user_id, family_id, existing)
        if not existing:
            rows = [
                create_row(
                    user_id=user_id,
                    family_id=family and family.pk,
                    feature_code=code,
                    plan=plan,
                    subscription_id=subscription_id,
                    payment_id=payment_id,
                    grant_id=grant_id,
                    granted_at=starts_at,
                    expires_at=expires_at,
                )
                for code in features
            ]
            for row in rows:
                emit("created", row)
            invalidate_rows(rows)
            return rows
        return _renew(existing, plan, features, family, payment_id, expires_at, now)


def _grant_family(plan: Plan, user_id: str, family_id, existing: list[Entitlement]) -> Family | None:
    if not plan.is_family:
        return None
    family_id = family_id or next((e.family_id for e in existing if e.family_id), None)
    if family_id:
        family = Family.objects.select_for_update().filter(pk=family_id).first()
        if family is not None:
            if family.owner_user_id != user_id:
                raise FamilyOwnerMismatch(f"Family {family_id} belongs to another user.")
            if family.plan_id != plan.pk:
                family.plan = plan
                family.save(update_fields=["plan", "updated_at"])
                family_seats_fit(family=family, max_users=plan.max_users)
            return family
    family = Family.objects.create(
        **({"id": family_id} if family_id else {}), owner_user_id=user_id, plan=plan, member_count=1
    )
    FamilyMember.objects.create(family=family, user_id=user_id, role=FamilyMember.Role.OWNER)
    return family


def _renew(existing, plan, features, family, payment_id, expires_at, now) -> list[Entitlement]:
    current_end = latest_end(e.expires_at for e in existing)
    renewal = later(expires_at, current_end)
    plan_change = expires_at == current_end and any(e.plan_id != plan.pk for e in existing)
    by_feature = {e.feature_id: e for e in existing}
    if not (renewal or plan_change):  # a retry, or an older period arriving late
        return [by_feature[code] for code in features if code in by_feature]

    template = existing[0]
    changed, created, rows = [], [], []
    for code in features:
        row = by_feature.get(code)
        if row is None:
            row = create_row(
                user_id=template.user_id,
                family_id=family and family.pk,
                feature_code=code,
                plan=plan,
                subscription_id=template.subscription_id,
                payment_id=payment_id or template.payment_id,
                granted_at=now,
                expires_at=expires_at,
            )
            created.append(row)
        else:
            row.plan, row.family = plan, family
            row.expires_at = expires_at if renewal else row.expires_at
            row.status, row.status_reason = ACTIVE, ""
            row.usage_limits = plan.usage_limits
            if payment_id:
                row.payment_id = payment_id
            row.save()
            changed.append(row)
        rows.append(row)
    for row in existing:
        if row.feature_id not in features and row.status == ACTIVE:
            row.status, row.status_reason = CANCELLED, REASON_PLAN_CHANGED
            row.save(update_fields=["status", "status_reason", "updated_at"])
            changed.append(row)
    for row in created:
        emit("created", row)
    for row in changed:
        emit("updated", row)
    invalidate_rows([*created, *changed, *existing])
    return rows


def _cancel_rows(queryset, reason: str) -> list[Entitlement]:
    with transaction.atomic():
        rows = list(queryset.select_for_update().filter(status=ACTIVE))
        for row in rows:
            row.status, row.status_reason = CANCELLED, reason[:255]
            row.save(update_fields=["status", "status_reason", "updated_at"])
            emit("updated", row)
        invalidate_rows(rows)
    return rows


def entitlements_cancel_for_payment(*, payment_id, reason: str) -> list[Entitlement]:
    """The payment that granted these rows was refunded or reversed: cancel them now."""
    return _cancel_rows(Entitlement.objects.filter(payment_id=payment_id), reason)


def entitlements_cancel_for_subscription(
    *, subscription_id: str, reason: str, at: datetime | None = None
) -> list[Entitlement]:
    """The subscription ended. `at` None or past: cancel now; future: access ends at `at`."""
    if at is None or at <= timezone.now():
        return _cancel_rows(Entitlement.objects.filter(subscription_id=subscription_id), reason)
    with transaction.atomic():
        rows = list(
            Entitlement.objects.select_for_update().filter(subscription_id=subscription_id, status=ACTIVE)
        )
        changed = [row for row in rows if row.expires_at is None or row.expires_at > at]
        for row in changed:
            row.expires_at, row.status_reason = at, reason[:255]
            row.save(update_fields=["expires_at", "status_reason", "updated_at"])
            emit("updated", row)
        invalidate_rows(changed)
    return rows


def entitlements_extend_subscription(
    *, subscription_id: str, expires_at: datetime | None
) -> list[Entitlement]:
    """A renewal: move the end of the subscription's rows later; expired rows become active.

    Cancelled rows stay cancelled; an earlier or equal `expires_at` changes nothing.
    """
    with transaction.atomic():
        rows = list(
            Entitlement.objects.select_for_update().filter(
                subscription_id=subscription_id, status__in=[ACTIVE, EXPIRED]
            )
        )
        changed = [row for row in rows if later(expires_at, row.expires_at)]
        for row in changed:
            row.expires_at, row.status, row.status_reason = expires_at, ACTIVE, ""
            row.save(update_fields=["expires_at", "status", "status_reason", "updated_at"])
            emit("updated", row)
        invalidate_rows(changed)
    return rows


def entitlements_set_subscription_end(
    *, subscription_id: str, expires_at: datetime, reason: str
) -> list[Entitlement]:
    """Access to the subscription's rows ends exactly at `expires_at`, earlier or later than set
    (a past_due subscription's grace). Expired rows whose new end is ahead are active again;
    cancelled rows stay cancelled."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Entitlement.objects.select_for_update().filter(
                subscription_id=subscription_id, status__in=[ACTIVE, EXPIRED]
            )
        )
        changed = []
        for row in rows:
            status = ACTIVE if expires_at > now else row.status
            if row.expires_at == expires_at and row.status == status:
                continue
            row.expires_at, row.status, row.status_reason = expires_at, status, reason[:255]
            row.save(update_fields=["expires_at", "status", "status_reason", "updated_at"])
            emit("updated", row)
            changed.append(row)
        invalidate_rows(changed)
    return rows
