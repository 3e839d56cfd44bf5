from rest_framework.permissions import BasePermission

from jia_payments.core.api.auth import Principal


def principal_of(request) -> Principal | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, Principal) else None


class IsAuthenticatedCaller(BasePermission):
    """Any verified caller: end user, service or staff."""

    def has_permission(self, request, view):
        return principal_of(request) is not None


class IsServiceOrStaff(BasePermission):
    message = "Only services and staff may do this."

    def has_permission(self, request, view):
        principal = principal_of(request)
        return principal is not None and principal.is_privileged


class IsStaff(BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request, view):
        principal = principal_of(request)
        return principal is not None and principal.role == Principal.STAFF
