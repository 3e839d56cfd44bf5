"""Family seats: adding and removing members, counted by the database."""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from entitlements.errors import AlreadyMember, OwnerCannotLeave, PlanFull
from entitlements.models import Family, FamilyMember
from entitlements.services._shared import invalidate_after_commit
from jia_payments.core.api.errors import NotFound
from jia_payments.core.audit.trail import record_changes
from pricing import selectors as pricing_selectors


def family_member_add(*, family_id, user_id: str) -> FamilyMember:
    """Take a seat with one conditional UPDATE (member_count < plan.max_users): 409 plan_full."""
    max_users = pricing_selectors.plan_max_users_subquery(plan_ref="plan_id")
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
            invalidate_after_commit(user_ids={user_id})
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
        invalidate_after_commit(user_ids={user_id})


def _audit_seats(family_id, before_offset: int, **what) -> None:
    """Audit a seat counter moved by a conditional UPDATE (auditlog does not see it)."""
    family = Family.objects.filter(pk=family_id).only("id", "owner_user_id", "member_count").first()
    if family is not None:
        after = family.member_count
        record_changes(
            Family, [(family.pk, str(family), {"member_count": (after + before_offset, after)})], **what
        )
