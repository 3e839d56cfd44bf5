"""Every write to entitlements and families: the app's public interface for other apps and
transports (`from entitlements.services import entitlements_grant_plan`).

Each service owns its transaction, records an `entitlement.*` event per changed row in it, and
invalidates the cache of exactly the users whose answer may change, after commit (a family's
rows fan out to all its members). By area: `grants` (plan grants, renewals, cancellations by
subscription or payment), `rows` (single rows by hand), `expiry` (the sweeper), `plan_sync`
(plan changes made in admin), `families` (seats).
"""

from entitlements.services._shared import REASON_FEATURE_REMOVED, REASON_PLAN_CHANGED
from entitlements.services.expiry import EXPIRY_SWEEPER, entitlements_expire_due
from entitlements.services.families import family_member_add, family_member_remove
from entitlements.services.grants import (
    entitlements_cancel_for_payment,
    entitlements_cancel_for_subscription,
    entitlements_extend_subscription,
    entitlements_grant_plan,
)
from entitlements.services.plan_sync import plan_entitlements_sync, plan_entitlements_sync_later
from entitlements.services.rows import (
    STATUS_TRANSITIONS,
    entitlement_admin_create,
    entitlement_create,
    entitlement_revoke,
    entitlement_set_expiry,
    entitlement_set_status,
    entitlement_update,
)

__all__ = [
    "EXPIRY_SWEEPER",
    "REASON_FEATURE_REMOVED",
    "REASON_PLAN_CHANGED",
    "STATUS_TRANSITIONS",
    "entitlement_admin_create",
    "entitlement_create",
    "entitlement_revoke",
    "entitlement_set_expiry",
    "entitlement_set_status",
    "entitlement_update",
    "entitlements_cancel_for_payment",
    "entitlements_cancel_for_subscription",
    "entitlements_expire_due",
    "entitlements_extend_subscription",
    "entitlements_grant_plan",
    "family_member_add",
    "family_member_remove",
    "plan_entitlements_sync",
    "plan_entitlements_sync_later",
]
