"""Admin's 403: staff refused a page by their groups see it in admin's frame, with a way back."""

from django.contrib import admin
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from jia_payments.core.api import errors


def permission_denied_view(request, exception=None):
    """The project's handler403: admin's page for staff in admin, else the API's answer."""
    admin_home = reverse("admin:index")
    user = getattr(request, "user", None)
    if not (request.path.startswith(admin_home) and user is not None and user.is_active and user.is_staff):
        return errors.permission_denied_view(request, exception)
    context = {
        **admin.site.each_context(request),
        "title": "Permission denied",
        "back_url": _back_url(request, admin_home),
    }
    return render(request, "admin/403.html", context, status=403)


def _back_url(request, default: str) -> str:
    """The page staff came from when it is ours and not this one, else admin's home."""
    referer = request.headers.get("Referer", "")
    ours = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if ours and referer != request.build_absolute_uri() else default
