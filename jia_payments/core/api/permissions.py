"""Who may call a view. Services and staff tokens act for anyone; a staff session (a user logged in
to admin) is staff too, but changes through the API only what its admin groups allow it to change
in admin: a view names the Django permissions a change needs in `session_permissions`
(`{"POST": ["payments.refund_payment"]}`), and a staff session without them is refused (403), as the
admin page is. Reads and token callers are not affected."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from jia_payments.core.api.auth import Principal


def principal_of(request) -> Principal | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, Principal) else None


def session_may(principal: Principal, request, view) -> bool:
    """A staff session holds the Django permissions the view's change needs (token callers: yes)."""
    if principal.session_user is None or request.method in SAFE_METHODS:
        return True
    needed = getattr(view, "session_permissions", {}).get(request.method, ())
    return principal.session_user.has_perms(needed)


SESSION_REFUSED = "Your admin groups do not allow this change."


class _Caller(BasePermission):
    """A verified caller this permission `admits`; a staff session also within its admin groups."""

    def admits(self, principal: Principal) -> bool:
        return True

    def has_permission(self, request, view):
        principal = principal_of(request)
        if principal is None or not self.admits(principal):
            return False
        if not session_may(principal, request, view):
            self.message = SESSION_REFUSED
            return False
        return True


class IsAuthenticatedCaller(_Caller):
    """Any verified caller: end user, service or staff (a staff session within its admin groups)."""


class IsServiceOrStaff(_Caller):
    message = "Only services and staff may do this."

    def admits(self, principal: Principal) -> bool:
        return principal.is_privileged


class IsStaff(_Caller):
    message = "Only staff may do this."

    def admits(self, principal: Principal) -> bool:
        return principal.role == Principal.STAFF
