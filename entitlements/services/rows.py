"""Single entitlements, granted and changed by hand (API, admin): create, status, expiry."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from entitlements.errors import EntitlementExists, InvalidEntitlementInput
from entitlements.models import Entitlement, Family
from entitlements.services._shared import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    create_row,
    emit,
    invalidate_rows,
    plan_of,
)
from jia_payments.core.api.errors import InvalidTransition, NotFound
from jia_payments.core.audit.trail import audit_context, record_changes
from pricing import selectors as pricing_selectors

# The moves `entitlement_set_status` allows (same status = no change).
STATUS_TRANSITIONS = {
    ACTIVE: {EXPIRED, CANCELLED},
    EXPIRED: {ACTIVE, CANCELLED},
    CANCELLED: {ACTIVE},
}


def check_feature_of_plan(*, plan, feature_code: str) -> None:
    """A plan grants only its own features (the API's and the admin's single grants)."""
    if not pricing_selectors.plan_has_feature(plan=plan, feature_code=feature_code):
        raise InvalidEntitlementInput(
            "The feature is not part of the plan.",
            errors={"feature_code": [f"{feature_code!r} is not a feature of plan {plan.pk!r}."]},
        )


def entitlement_create(
    *,
    user_id: str,
    feature_code: str,
    plan_id: str,
    family_id=None,
    subscription_id: str = "",
    payment_id=None,
    expires_at: datetime | None = None,
    usage_limits: dict | None = None,
    metadata: dict | None = None,
    reason: str = "",
) -> Entitlement:
    """One entitlement granted by hand. `usage_limits` defaults to the plan's; `reason` (why it
    was granted) goes into the audit trail.

    The family is locked in the transaction that inserts the row: a family deleted before the
    lock is "Unknown family" (400), and none can be deleted after it until the row is committed.
    """
    plan = plan_of(plan_id)
    check_feature_of_plan(plan=plan, feature_code=feature_code)
    try:
        with audit_context(reason=reason), transaction.atomic():
            if family_id and _locked_family_id(family_id) is None:
                raise InvalidEntitlementInput("Unknown family.", errors={"family_id": ["Unknown family."]})
            entitlement = create_row(
                user_id=user_id,
                feature_code=feature_code,
                plan=plan,
                family_id=family_id,
                subscription_id=subscription_id,
                payment_id=payment_id,
                origin=Entitlement.Origin.MANUAL,
                expires_at=expires_at,
                usage_limits=usage_limits,
                metadata=metadata,
            )
            emit("created", entitlement)
            invalidate_rows([entitlement])
    except IntegrityError as error:
        raise EntitlementExists(
            "This user already holds an active entitlement for this feature from this plan "
            "(or this subscription/payment already grants it)."
        ) from error
    return entitlement


def _locked_family_id(family_id):
    return Family.objects.select_for_update().filter(pk=family_id).values_list("pk", flat=True).first()


def entitlement_set_status(*, entitlement_id, status: str, reason: str = "") -> Entitlement:
    """Move along STATUS_TRANSITIONS (409 otherwise); the same status changes nothing."""
    allowed_from = [source for source, targets in STATUS_TRANSITIONS.items() if status in targets]
    try:
        with audit_context(reason=reason), transaction.atomic():
            # The row lock makes the status read here the one the conditional UPDATE moves from
            # (the audit trail records it as "before").
            before = (
                Entitlement.objects.select_for_update()
                .filter(pk=entitlement_id)
                .values_list("status", "status_reason")
                .first()
            )
            moved = Entitlement.objects.filter(pk=entitlement_id, status__in=allowed_from).update(
                status=status, status_reason=reason[:255], updated_at=timezone.now()
            )
            entitlement = Entitlement.objects.filter(pk=entitlement_id).first()
            if entitlement is None:
                raise NotFound("No such entitlement.")
            if not moved:
                if entitlement.status == status:
                    return entitlement
                raise InvalidTransition(f"An entitlement cannot move from {entitlement.status} to {status}.")
            record_changes(
                Entitlement,
                [
                    (
                        entitlement.pk,
                        str(entitlement),
                        {
                            "status": (before[0], entitlement.status),
                            "status_reason": (before[1], entitlement.status_reason),
                        },
                    )
                ],
            )
            emit("expired" if status == EXPIRED else "updated", entitlement)
            invalidate_rows([entitlement])
    except IntegrityError as error:
        raise EntitlementExists("Another active entitlement like this one exists.") from error
    return entitlement


def entitlement_revoke(*, entitlement_id, reason: str = "") -> Entitlement:
    return entitlement_set_status(entitlement_id=entitlement_id, status=CANCELLED, reason=reason)


def entitlement_set_expiry(*, entitlement_id, expires_at: datetime | None, reason: str = "") -> Entitlement:
    """New end (None = lifetime). An expired row moved into the future becomes active again.
    `reason` (why it was extended or shortened) goes into the audit trail."""
    with audit_context(reason=reason), transaction.atomic():
        entitlement = Entitlement.objects.select_for_update().filter(pk=entitlement_id).first()
        if entitlement is None:
            raise NotFound("No such entitlement.")
        if entitlement.expires_at == expires_at:
            return entitlement
        entitlement.expires_at = expires_at
        if entitlement.status == EXPIRED and (expires_at is None or expires_at > timezone.now()):
            entitlement.status, entitlement.status_reason = ACTIVE, ""
        try:
            with transaction.atomic():
                entitlement.save(update_fields=["expires_at", "status", "status_reason", "updated_at"])
        except IntegrityError as error:
            raise EntitlementExists("Another active entitlement like this one exists.") from error
        emit("updated", entitlement)
        invalidate_rows([entitlement])
    return entitlement


def entitlement_admin_create(*, entitlement: Entitlement) -> Entitlement:
    """Save an entitlement added in Django admin (its form validated it): event, invalidation."""
    with transaction.atomic():
        entitlement.save()
        emit("created", entitlement)
        invalidate_rows([entitlement])
    return entitlement


def entitlement_update(*, entitlement: Entitlement, changed_fields: list[str]) -> Entitlement:
    """Save an entitlement edited in Django admin: one event, the affected users invalidated."""
    if not changed_fields:
        return entitlement
    with transaction.atomic():
        before = Entitlement.objects.select_for_update().filter(pk=entitlement.pk).first()
        entitlement.save()
        kind = (
            "expired" if entitlement.status == EXPIRED and before and before.status != EXPIRED else "updated"
        )
        emit(kind, entitlement)
        invalidate_rows([entitlement, *([before] if before else [])])
    return entitlement
