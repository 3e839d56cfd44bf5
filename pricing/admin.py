from django.contrib import admin
from django.utils.html import format_html_join

from jia_payments.core.audit.admin import AuditedAdmin
from pricing.models import Feature, Plan, PricingZone
from pricing.money import format_major_units
from pricing.selectors import zone_price_cents
from pricing.services import plan_features_changed
from pricing.zones import ZONES


@admin.register(Feature)
class FeatureAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["code", "name", "updated_at"]
    search_fields = ["code", "name"]
    readonly_fields = ["created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # The code is the key entitlements point at: fixed once created.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "code"] if obj else fields


@admin.register(Plan)
class PlanAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["id", "name", "billing_cycle", "price_cents", "currency", "max_users", "active"]
    list_filter = ["billing_cycle", "active", "currency"]
    search_fields = ["id", "name"]
    filter_horizontal = ["features"]
    readonly_fields = ["zone_prices", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "name", "description", "active"]}),
        ("Price", {"fields": ["billing_cycle", "price_cents", "currency", "zone_prices"]}),
        ("What it gives", {"fields": ["features", "max_users", "usage_limits", "metadata"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id"] if obj else fields

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change and {"features", "usage_limits"} & set(form.changed_data):
            plan_features_changed(plan_id=form.instance.pk)

    @admin.display(description="Price in each zone")
    def zone_prices(self, plan: Plan) -> str:
        if plan.price_cents is None:
            return "-"
        return format_html_join(
            "",
            "<div>Zone {} ({}, x{}): {} {}</div>",
            (
                (
                    spec.zone,
                    spec.zone_name,
                    spec.multiplier,
                    format_major_units(
                        zone_price_cents(
                            base_price_cents=plan.price_cents,
                            multiplier=spec.multiplier,
                            currency=plan.currency,
                        ),
                        plan.currency,
                    ),
                    plan.currency,
                )
                for spec in ZONES.values()
            ),
        )


@admin.register(PricingZone)
class PricingZoneAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = [
        "iso_code",
        "country",
        "zone",
        "zone_name",
        "pricing_multiplier",
        "world_bank_classification",
    ]
    list_filter = ["zone", "world_bank_classification"]
    search_fields = ["iso_code", "country"]
    readonly_fields = ["id", "created_at", "updated_at"]
    ordering = ["iso_code"]
