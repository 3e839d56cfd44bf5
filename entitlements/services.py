"""Every write to entitlements and families.

Each service owns its transaction, records an `entitlement.*` event per changed row in it, and
invalidates the cache of exactly the users whose answer may change, after commit (a family's
rows fan out to all its members).
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from dateutil.relativedelta import relativedelta
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from entitlements import cache
from entitlements.errors import (
    AlreadyMember,
    EntitlementExists,
    FamilyOwnerMismatch,
    InvalidEntitlementInput,
    OwnerCannotLeave,
    PlanFull,
)
from entitlements.models import Entitlement, Family, FamilyMember
from entitlements.selectors import family_user_ids
from entitlements.serializers import entitlement_data
from jia_payments.core.api.errors import InvalidTransition, NotFound
from jia_payments.core.audit.trail import audit_context, record_changes
from jia_payments.core.outbox.events import record_event
from pricing.models import Plan

ACTIVE = Entitlement.Status.ACTIVE
EXPIRED = Entitlement.Status.EXPIRED
CANCELLED = Entitlement.Status.CANCELLED

# The moves `entitlement_set_status` allows (same status = no change).
STATUS_TRANSITIONS = {
    ACTIVE: {EXPIRED, CANCELLED},
    EXPIRED: {ACTIVE, CANCELLED},
    CANCELLED: {ACTIVE},
}

REASON_FEATURE_REMOVED = "feature removed from plan"
REASON_PLAN_CHANGED = "subscription changed plan"
EXPIRY_SWEEPER = "system:expiry-sweeper"


# --- helpers -------------------------------------------------------------------------------


def period_end(starts_at: datetime, billing_cycle: str) -> datetime | None:
    """Calendar-correct end of one billing period: 31 Jan + 1 month = end of February."""
    if billing_cycle == Plan.BillingCycle.MONTHLY:
        return starts_at + relativedelta(months=1)
    if billing_cycle == Plan.BillingCycle.YEARLY:
        return starts_at + relativedelta(years=1)
    return None


def _later(candidate: datetime | None, current: datetime | None) -> bool:
    """Is `candidate` a later end than `current` (None = never ends)?"""
    if current is None:
        return False
    return candidate is None or candidate > current


def _latest_end(values: Iterable[datetime | None]) -> datetime | None:
    values = list(values)
    return None if any(v is None for v in values) else max(values)


def _emit(kind: str, entitlement: Entitlement) -> None:
    record_event(
        type=f"entitlement.{kind}",
        aggregate_id=entitlement.pk,
        subject=f"entitlements/{entitlement.pk}",
        data=entitlement_data(entitlement),
    )


def _invalidate_after_commit(*, user_ids: Iterable[str] = (), family_ids: Iterable = ()) -> None:
    """After commit, drop the cache of these users and of everyone in these families.

    The families' members are read after commit, so a member added concurrently is either seen
    here or invalidated by its own add, which commits later.
    """
    user_ids = set(user_ids)
    family_ids = {f for f in family_ids if f}

    def invalidate():
        cache.invalidate_users(user_ids | family_user_ids(family_ids))

    transaction.on_commit(invalidate, robust=True)


def _invalidate_rows(rows: Iterable[Entitlement]) -> None:
    rows = list(rows)
    if rows:
        _invalidate_after_commit(user_ids={r.user_id for r in rows}, family_ids={r.family_id for r in rows})


def _lock(key: str) -> None:
    """A transaction-scoped advisory lock (PostgreSQL): serialises grants of one subscription."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _plan(plan: Plan | str) -> Plan:
    if isinstance(plan, Plan):
        return plan
    found = Plan.objects.filter(pk=plan).first()
    if found is None:
        raise InvalidEntitlementInput(f"Unknown plan {plan!r}.", errors={"plan_id": ["Unknown plan."]})
    return found


# --- grants from a plan --------------------------------------------------------------------


def grant_plan(
    *,
    user_id: str,
    plan: Plan | str,
    subscription_id: str = "",
    family_id=None,
    payment_id=None,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> list[Entitlement]:
    """Grant one entitlement per feature of `plan`; returns the plan's rows.

    Idempotent per subscription (else per payment, else per user and plan): a retry of the same
    period creates and changes nothing; a later period (renewal) extends `expires_at` of the
    existing rows, reactivating them, instead of adding rows; the same period with another plan
    (upgrade) moves the rows to it, adds its new features and cancels the ones it lacks.
    `expires_at` defaults to `starts_at` (default now) plus one billing period, None for one_time.
    A family plan (max_users > 1) creates the Family, owned by `user_id`, or reuses `family_id`.
    """
    plan = _plan(plan)
    now = timezone.now()
    starts_at = starts_at or now
    if expires_at is None:
        expires_at = period_end(starts_at, plan.billing_cycle)
    features = list(plan.features.values_list("code", flat=True))

    if subscription_id:
        key, existing_q = f"sub:{subscription_id}", {"subscription_id": subscription_id}
    elif payment_id:
        key, existing_q = f"pay:{payment_id}", {"payment_id": payment_id}
    else:
        key = f"user:{user_id}:{plan.pk}:{family_id or ''}"
        existing_q = {"user_id": user_id, "subscription_id": "", "payment_id": None, "status": ACTIVE}
        existing_q.update({"family_id": family_id} if family_id else {"plan": plan})

    with transaction.atomic():
        _lock(f"entitlements.grant:{key}")
        existing = list(Entitlement.objects.select_for_update().filter(**existing_q).order_by("granted_at"))
        family = _grant_family(plan, user_id, family_id, existing)
        if not existing:
            rows = [
                Entitlement.objects.create(
                    user_id=user_id,
                    family=family,
                    feature_id=code,
                    plan=plan,
                    subscription_id=subscription_id,
                    payment_id=payment_id,
                    origin=Entitlement.Origin.PLAN,
                    granted_at=starts_at,
                    expires_at=expires_at,
                    usage_limits=plan.usage_limits,
                )
                for code in features
            ]
            for row in rows:
                _emit("created", row)
            _invalidate_rows(rows)
            return rows
        rows = _renew(existing, plan, features, family, payment_id, expires_at, now)
        return rows


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
            return family
    family = Family.objects.create(
        **({"id": family_id} if family_id else {}), owner_user_id=user_id, plan=plan, member_count=1
    )
    FamilyMember.objects.create(family=family, user_id=user_id, role=FamilyMember.Role.OWNER)
    return family


def _renew(existing, plan, features, family, payment_id, expires_at, now) -> list[Entitlement]:
    current_end = _latest_end(e.expires_at for e in existing)
    renewal = _later(expires_at, current_end)
    plan_change = expires_at == current_end and any(e.plan_id != plan.pk for e in existing)
    by_feature = {e.feature_id: e for e in existing}
    if not (renewal or plan_change):  # a retry, or an older period arriving late
        return [by_feature[code] for code in features if code in by_feature]

    template = existing[0]
    changed, created, rows = [], [], []
    for code in features:
        row = by_feature.get(code)
        if row is None:
            row = Entitlement.objects.create(
                user_id=template.user_id,
                family=family,
                feature_id=code,
                plan=plan,
                subscription_id=template.subscription_id,
                payment_id=payment_id or template.payment_id,
                origin=Entitlement.Origin.PLAN,
                granted_at=now,
                expires_at=expires_at,
                usage_limits=plan.usage_limits,
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
        _emit("created", row)
    for row in changed:
        _emit("updated", row)
    _invalidate_rows([*created, *changed, *existing])
    return rows


# --- cancellations and renewals by subscription / payment ------------------------------------


def _cancel_rows(queryset, reason: str) -> list[Entitlement]:
    with transaction.atomic():
        rows = list(queryset.select_for_update().filter(status=ACTIVE))
        for row in rows:
            row.status, row.status_reason = CANCELLED, reason[:255]
            row.save(update_fields=["status", "status_reason", "updated_at"])
            _emit("updated", row)
        _invalidate_rows(rows)
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
            _emit("updated", row)
        _invalidate_rows(changed)
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
        changed = [row for row in rows if _later(expires_at, row.expires_at)]
        for row in changed:
            row.expires_at, row.status, row.status_reason = expires_at, ACTIVE, ""
            row.save(update_fields=["expires_at", "status", "status_reason", "updated_at"])
            _emit("updated", row)
        _invalidate_rows(changed)
    return rows


# --- single entitlements (API, admin) ---------------------------------------------------------


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
    was granted) goes into the audit trail."""
    plan = _plan(plan_id)
    if not plan.features.filter(code=feature_code).exists():
        raise InvalidEntitlementInput(
            "The feature is not part of the plan.",
            errors={"feature_code": [f"{feature_code!r} is not a feature of plan {plan.pk!r}."]},
        )
    if family_id and not Family.objects.filter(pk=family_id).exists():
        raise InvalidEntitlementInput("Unknown family.", errors={"family_id": ["Unknown family."]})
    try:
        with audit_context(reason=reason), transaction.atomic():
            entitlement = Entitlement.objects.create(
                user_id=user_id,
                feature_id=feature_code,
                plan=plan,
                family_id=family_id,
                subscription_id=subscription_id,
                payment_id=payment_id,
                expires_at=expires_at,
                usage_limits=plan.usage_limits if usage_limits is None else usage_limits,
                metadata=metadata or {},
            )
            _emit("created", entitlement)
            _invalidate_rows([entitlement])
    except IntegrityError as error:
        raise EntitlementExists(
            "This user already holds an active entitlement for this feature from this plan "
            "(or this subscription/payment already grants it)."
        ) from error
    return entitlement


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
            _emit("expired" if status == EXPIRED else "updated", entitlement)
            _invalidate_rows([entitlement])
    except IntegrityError as error:
        raise EntitlementExists("Another active entitlement like this one exists.") from error
    return entitlement


def entitlement_revoke(*, entitlement_id, reason: str = "") -> Entitlement:
    return entitlement_set_status(entitlement_id=entitlement_id, status=CANCELLED, reason=reason)


def entitlement_set_expiry(*, entitlement_id, expires_at: datetime | None) -> Entitlement:
    """New end (None = lifetime). An expired row moved into the future becomes active again."""
    with transaction.atomic():
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
        _emit("updated", entitlement)
        _invalidate_rows([entitlement])
    return entitlement


def entitlement_admin_create(*, entitlement: Entitlement) -> Entitlement:
    """Save an entitlement added in Django admin (its form validated it): event, invalidation."""
    with transaction.atomic():
        entitlement.save()
        _emit("created", entitlement)
        _invalidate_rows([entitlement])
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
        _emit(kind, entitlement)
        _invalidate_rows([entitlement, *([before] if before else [])])
    return entitlement


# --- the expiry sweeper ------------------------------------------------------------------------


def entitlements_expire_due(*, batch_size: int = 500, max_batches: int = 200) -> int:
    """Mark active rows past `expires_at` expired, one event each; returns how many.

    Batches of `batch_size` rows, each in its own short transaction, taking row locks with
    SKIP LOCKED: rows another transaction holds are left for the next run, nothing else waits.
    """
    total = 0
    for _ in range(max_batches):
        with audit_context(actor=EXPIRY_SWEEPER), transaction.atomic():
            now = timezone.now()
            reasons_before = dict(
                Entitlement.objects.select_for_update(skip_locked=True)
                .filter(status=ACTIVE, expires_at__lte=now)
                .order_by("expires_at")
                .values_list("pk", "status_reason")[:batch_size]
            )
            due = list(reasons_before)
            if not due:
                break
            Entitlement.objects.filter(pk__in=due).update(
                status=EXPIRED, status_reason="expires_at passed", updated_at=now
            )
            rows = list(Entitlement.objects.filter(pk__in=due))
            # One INSERT of audit entries per batch, in the batch's transaction.
            record_changes(
                Entitlement,
                (
                    (
                        row.pk,
                        str(row),
                        {
                            "status": (ACTIVE, row.status),
                            "status_reason": (reasons_before[row.pk], row.status_reason),
                        },
                    )
                    for row in rows
                ),
            )
            for row in rows:
                _emit("expired", row)
            _invalidate_rows(rows)
        total += len(due)
        if len(due) < batch_size:
            break
    return total


# --- plan changes made in admin ------------------------------------------------------------------


def plan_entitlements_sync(*, plan_id: str, batch_users: int = 200) -> dict[str, int]:
    """Make the plan-granted rows of `plan_id` follow the plan's current features and limits.

    For every holder (user, family, subscription, payment) with an active plan-granted row:
    features added to the plan are granted until the holder's current end, features removed are
    cancelled, `usage_limits` follow the plan. Batches of users, one transaction each.
    """
    plan = _plan(plan_id)
    features = set(plan.features.values_list("code", flat=True))
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
    end = _latest_end(r.expires_at for r in active)
    by_feature = {r.feature_id: r for r in holding}
    created, changed = [], []
    for code in sorted(features):
        row = by_feature.get(code)
        if row is None:
            template = active[0]
            row = Entitlement.objects.create(
                user_id=template.user_id,
                family_id=template.family_id,
                feature_id=code,
                plan=plan,
                subscription_id=template.subscription_id,
                payment_id=template.payment_id,
                origin=Entitlement.Origin.PLAN,
                expires_at=end,
                usage_limits=plan.usage_limits,
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
        _emit("created", row)
    for row in changed:
        _emit("updated", row)
    _invalidate_rows([*created, *changed])
    return len(created), len(changed)


# --- families ----------------------------------------------------------------------------------


def family_member_add(*, family_id, user_id: str) -> FamilyMember:
    """Take a seat with one conditional UPDATE (member_count < plan.max_users): 409 plan_full."""
    max_users = Subquery(Plan.objects.filter(pk=OuterRef("plan_id")).order_by().values("max_users")[:1])
    try:
        with transaction.atomic():
            taken = Family.objects.filter(pk=family_id, member_count__lt=max_users).update(
                member_count=F("member_count") + 1, updated_at=timezone.now()
            )
            if not taken:
                if not Family.objects.filter(pk=family_id).exists():
                    raise NotFound("No such family.")
                raise PlanFull("Every seat of this family plan is taken.")
            member = FamilyMember.objects.create(family_id=family_id, user_id=user_id)
            _audit_seats(family_id, -1, member_added=user_id)
            _invalidate_after_commit(user_ids={user_id})
    except IntegrityError as error:
        raise AlreadyMember(f"{user_id} is already a member of this family.") from error
    return member


def family_member_remove(*, family_id, user_id: str) -> None:
    """Free the seat; the member loses the family's features at once (cache dropped on commit)."""
    with transaction.atomic():
        member = FamilyMember.objects.select_for_update().filter(family_id=family_id, user_id=user_id).first()
        if member is None:
            raise NotFound("No such family member.")
        if member.role == FamilyMember.Role.OWNER:
            raise OwnerCannotLeave("The owner holds the family plan and cannot be removed.")
        member.delete()
        Family.objects.filter(pk=family_id).update(
            member_count=F("member_count") - 1, updated_at=timezone.now()
        )
        _audit_seats(family_id, +1, member_removed=user_id)
        _invalidate_after_commit(user_ids={user_id})


def _audit_seats(family_id, before_offset: int, **what) -> None:
    """Audit a seat counter moved by a conditional UPDATE (auditlog does not see it)."""
    family = Family.objects.filter(pk=family_id).only("id", "owner_user_id", "member_count").first()
    if family is not None:
        after = family.member_count
        record_changes(
            Family, [(family.pk, str(family), {"member_count": (after + before_offset, after)})], **what
        )
