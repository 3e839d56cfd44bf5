"""Plan changes made in admin: the plan-granted rows follow the plan's features and limits."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from django.db import transaction

from entitlements.models import Entitlement
from entitlements.services._shared import (
    ACTIVE,
    CANCELLED,
    REASON_FEATURE_REMOVED,
    create_row,
    emit,
    invalidate_rows,
    latest_end,
    plan_of,
)
from pricing import selectors as pricing_selectors

if TYPE_CHECKING:
    from pricing.models import Plan


def plan_entitlements_sync(*, plan_id: str, batch_users: int = 200) -> dict[str, int]:
    """Make the plan-granted rows of `plan_id` follow the plan's current features and limits.

    For every holder (user, family, subscription, payment) with an active plan-granted row:
    features added to the plan are granted until the holder's current end, features removed are
    cancelled, `usage_limits` follow the plan. Batches of users, one transaction each.
    """
    plan = plan_of(plan_id)
    features = set(pricing_selectors.plan_feature_codes(plan=plan))
    counts = {"created": 0, "updated": 0}
    user_ids = list(
        Entitlement.objects.filter(plan=plan, origin=Entitlement.Origin.PLAN, status=ACTIVE)
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()
    )
    for start in range(0, len(user_ids), batch_users):
        with transaction.atomic():
            rows = Entitlement.objects.select_for_update().filter(
                plan=plan, origin=Entitlement.Origin.PLAN, user_id__in=user_ids[start : start + batch_users]
            )
            holders = defaultdict(list)
            for row in rows:
                holders[(row.user_id, row.family_id, row.subscription_id, row.payment_id)].append(row)
            for holding in holders.values():
                created, updated = _sync_holding(plan, features, holding)
                counts["created"] += created
                counts["updated"] += updated
    return counts


def plan_entitlements_sync_later(*, plan_id: str) -> None:
    """After the plan change commits, sync its rows in a Celery task (a plan may have many)."""
    from entitlements.tasks import sync_plan_entitlements

    transaction.on_commit(lambda: sync_plan_entitlements.delay(plan_id))


def _sync_holding(plan: Plan, features: set[str], holding: list[Entitlement]) -> tuple[int, int]:
    active = [r for r in holding if r.status == ACTIVE]
    if not active:
        return 0, 0
    end = latest_end(r.expires_at for r in active)
    by_feature = {r.feature_id: r for r in holding}
    created, changed = [], []
    for code in sorted(features):
        row = by_feature.get(code)
        if row is None:
            template = active[0]
            row = create_row(
                user_id=template.user_id,
                family_id=template.family_id,
                feature_code=code,
                plan=plan,
                subscription_id=template.subscription_id,
                payment_id=template.payment_id,
                expires_at=end,
            )
            created.append(row)
        elif row.status == CANCELLED and row.status_reason == REASON_FEATURE_REMOVED:
            row.status, row.status_reason, row.expires_at = ACTIVE, "", end
            row.usage_limits = plan.usage_limits
            row.save()
            changed.append(row)
        elif row.status == ACTIVE and row.usage_limits != plan.usage_limits:
            row.usage_limits = plan.usage_limits
            row.save(update_fields=["usage_limits", "updated_at"])
            changed.append(row)
    for row in active:
        if row.feature_id not in features:
            row.status, row.status_reason = CANCELLED, REASON_FEATURE_REMOVED
            row.save(update_fields=["status", "status_reason", "updated_at"])
            changed.append(row)
    for row in created:
        emit("created", row)
    for row in changed:
        emit("updated", row)
    invalidate_rows([*created, *changed])
    return len(created), len(changed)
