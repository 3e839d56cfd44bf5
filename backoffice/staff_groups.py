"""The staff groups and what each may do in admin: `support` looks into everything and fixes a
customer's access; `finance` also moves money (refunds, failing or cancelling a payment, creating
payments and checkouts for a customer, changing or cancelling a subscription) and changes prices
(plans, features, zones). A staff user without a permission sees no button and is refused
the URL (403)."""

# Everything of these apps can be seen by both groups.
VIEWED_APPS = ("core", "pricing", "entitlements", "payments", "djstripe", "auditlog")

# (app_label, codename, name of a permission no model declares)
EXTRA_PERMISSIONS = [("payments", "payment", "refund_payment", "Can refund a payment")]

SUPPORT = {
    "entitlements.add_entitlement",  # grant (a plan, or one feature)
    "entitlements.change_entitlement",  # revoke, extend
    "entitlements.change_family",  # add or remove a member
    "payments.change_stripeevent",  # reprocess a webhook
}
FINANCE = SUPPORT | {
    "payments.refund_payment",
    "payments.change_payment",  # mark failed, cancel a pending payment
    "payments.add_payment",  # create a payment for a customer (API)
    "payments.add_checkoutsession",  # a checkout for a customer (API)
    "payments.change_subscription",  # change plan, cancel, resume, open the billing portal (API)
    "pricing.add_plan",
    "pricing.change_plan",
    "pricing.add_feature",
    "pricing.change_feature",
    "pricing.add_pricingzone",
    "pricing.change_pricingzone",
    "core.change_outboxevent",  # publish an event again
}
GROUPS = {"support": SUPPORT, "finance": FINANCE}


def ensure_groups(apps) -> None:
    """Create (or complete) the groups and the permissions they hold (`apps`: django.apps)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        create_permissions(app_config, apps=apps, verbosity=0)
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for app_label, model, codename, name in EXTRA_PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    viewing = Permission.objects.filter(codename__startswith="view_", content_type__app_label__in=VIEWED_APPS)
    for group_name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        granted = list(viewing)
        for label in sorted(wanted):
            app_label, codename = label.split(".")
            granted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*granted)
