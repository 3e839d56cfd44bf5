"""The admin site: the product's sections first, in the order staff work through them, then the
Stripe mirror, the outbox and audit trail, and user accounts."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

SECTION_ORDER = ["pricing", "entitlements", "payments", "djstripe", "core", "auditlog", "auth"]
SECTION_NAMES = {"djstripe": "Stripe (read-only mirror)", "core": "Events and operations"}


class BackofficeSite(admin.AdminSite):
    site_header = "Jia payments back-office"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            app["name"] = SECTION_NAMES.get(app["app_label"], app["name"])
        rank = {label: index for index, label in enumerate(SECTION_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def get_urls(self):
        """Pages of a ModelAdmin that live beside its model's URLs (`site_urls()`), e.g.
        /admin/entitlements/why/."""
        extra = [
            url
            for model_admin in self._registry.values()
            for url in getattr(model_admin, "site_urls", list)()
        ]
        return [*extra, *super().get_urls()]


class BackofficeAdminConfig(AdminConfig):
    default_site = "backoffice.site.BackofficeSite"
