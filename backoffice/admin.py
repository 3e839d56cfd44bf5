"""dj-stripe's mirror in admin: only what staff use, read-only (Stripe is where these change)."""

from django.contrib import admin

STRIPE_SHOWN = {"Customer", "Subscription", "Invoice", "Charge", "Refund", "Event"}


class ReadOnlyMirror:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}  # dj-stripe's "sync from Stripe" and the like write the mirror


def prune_stripe_mirror(site: admin.AdminSite) -> None:
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label != "djstripe":
            continue
        site.unregister(model)
        if model.__name__ in STRIPE_SHOWN:
            read_only = type(f"ReadOnly{type(model_admin).__name__}", (ReadOnlyMirror, type(model_admin)), {})
            site.register(model, read_only)


prune_stripe_mirror(admin.site)
