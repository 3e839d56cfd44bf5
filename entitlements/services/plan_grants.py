"""Plan grants without a checkout (a promotion, a support gesture, a migration): every feature of
a plan at once, through the grant a purchase makes, revoked together by the grant's id."""

import uuid

from entitlements.errors import InvalidEntitlementInput
from entitlements.models import Entitlement
from entitlements.services._shared import plan_of
from entitlements.services.grants import _cancel_rows, entitlements_grant_plan
from jia_payments.core.api.errors import NotFound
from jia_payments.core.audit.trail import audit_context

DEFAULT_EXPIRY = object()  # the plan's period from now


def plan_grant_create(
    *, user_id: str, plan_id: str, family_id=None, expires_at=DEFAULT_EXPIRY, reason: str = ""
) -> tuple[uuid.UUID, list[Entitlement]]:
    """A family plan's family is created, owned by `user_id`, unless `family_id` names one of
    theirs. `expires_at`: None is lifetime; by default the plan's period from now. Answers
    (the grant's id, its rows)."""
    plan = plan_of(plan_id)
    if family_id is not None and not plan.is_family:
        raise InvalidEntitlementInput(
            "Only a family plan has a family.", errors={"family_id": ["Not a family plan."]}
        )
    grant_id = uuid.uuid4()
    with audit_context(reason=reason):
        rows = entitlements_grant_plan(
            user_id=user_id,
            plan=plan,
            family_id=family_id,
            grant_id=grant_id,
            expires_at=None if expires_at is DEFAULT_EXPIRY else expires_at,
            lifetime=expires_at is None,
        )
    return grant_id, rows


def plan_grant_revoke(*, grant_id, reason: str = "") -> list[Entitlement]:
    """Cancel every entitlement of the grant (those already cancelled stay as they are)."""
    if not Entitlement.objects.filter(grant_id=grant_id).exists():
        raise NotFound("No such grant.")
    with audit_context(reason=reason):
        return _cancel_rows(Entitlement.objects.filter(grant_id=grant_id), reason or "grant revoked")
