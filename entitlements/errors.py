"""The entitlement engine's domain errors (rendered as problem details with these codes)."""

from jia_payments.core.api.errors import Conflict, Forbidden, InvalidFields


class InvalidEntitlementInput(InvalidFields):
    """422 with field errors: a well-formed request naming a plan, feature or family that does not
    fit, or leaving out what this caller must name (the schema allows it; the data refuse it)."""


class PlanFull(Conflict):
    code, title = "plan_full", "The family plan has no free seat"


class AlreadyMember(Conflict):
    code, title = "already_member", "Already a member of this family"


class OwnerCannotLeave(Conflict):
    code, title = "owner_cannot_leave", "The family owner cannot be removed"


class EntitlementExists(Conflict):
    code, title = "entitlement_exists", "An active entitlement like this one already exists"


class FamilyOwnerMismatch(Conflict):
    code, title = "family_owner_mismatch", "The family belongs to another user"


class NotFamilyOwner(Forbidden):
    """A member may see the family, only its owner may change it (403, like any refused permission)."""


class NotYourself(Forbidden):
    """An end user asked about someone else's access (403, like any refused permission)."""
