from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from jia_payments.core.audit.admin import AuditedAdmin, action_reason
from pricing import admin_zones
from pricing.models import Feature, Plan, PricingZone
from pricing.money import format_major_units, format_money
from pricing.selectors import plan_zone_prices, zone_for_country, zone_price_cents
from pricing.services import plan_deactivate, plan_save, pricing_zone_delete, pricing_zone_upsert
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
    list_display = ["id", "name", "billing_cycle", "price_shown", "max_users", "active"]
    list_filter = ["billing_cycle", "active", "currency"]
    search_fields = ["id", "name"]
    filter_horizontal = ["features"]
    readonly_fields = ["zone_prices", "created_at", "updated_at"]
    actions = ["deactivate_selected"]
    fieldsets = [
        (None, {"fields": ["id", "name", "description", "active"]}),
        ("Price", {"fields": ["billing_cycle", "price_cents", "currency", "zone_prices"]}),
        ("What it gives", {"fields": ["features", "max_users", "usage_limits", "metadata"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    class Media:
        js = ["pricing/plan_price_preview.js"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id"] if obj else fields

    def get_urls(self):
        preview = path(
            "price-preview/",
            self.admin_site.admin_view(self.price_preview),
            name="pricing_plan_price_preview",
        )
        return [preview, *super().get_urls()]

    def save_model(self, request, obj, form, change):
        """Saved with its features in `save_related`, by the pricing service."""

    def save_related(self, request, form, formsets, change):
        features = [feature.code for feature in form.cleaned_data.get("features", [])]
        plan_save(plan=form.instance, feature_codes=features, reason=request.POST.get("audit_reason", ""))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request, obj=None):
        # Once a plan was sold or granted, deleting it would orphan history: deactivate it instead.
        if obj is not None and is_referenced(obj):
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Deactivate selected plans (no longer offered)", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        reason = action_reason(request) or "deactivated in admin"
        changed = sum(
            plan_deactivate(plan_id=pk, reason=reason) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{changed} plan(s) deactivated.", messages.SUCCESS)

    @admin.display(description="price", ordering="price_cents")
    def price_shown(self, plan: Plan) -> str:
        return format_money(plan.price_cents, plan.currency)

    @admin.display(description="Price in each zone")
    def zone_prices(self, plan: Plan) -> str:
        """The saved price in every zone, from the zone rows; the script in the Media replaces
        it with the price being typed (asking `price_preview`, the same pricing rule)."""
        lines = (
            zone_price_lines(base_price_cents=plan.price_cents, currency=plan.currency)
            if plan.price_cents is not None
            else "-"
        )
        return format_html(
            '<div id="zone-prices" data-preview-url="{}">{}</div>'
            '<p><label for="price-preview-country">Price for a country:</label> '
            '<input id="price-preview-country" size="3" maxlength="2" placeholder="IN"> '
            '<span id="country-price"></span></p>',
            reverse("admin:pricing_plan_price_preview"),
            lines,
        )

    def price_preview(self, request):
        """JSON for the plan form's preview: ?price_cents=999&currency=USD[&country=IN]."""
        try:
            base = int(request.GET.get("price_cents", ""))
        except ValueError:
            return JsonResponse({"error": "price_cents: a whole number of minor units"}, status=400)
        currency = request.GET.get("currency", "USD").strip().upper()[:3] or "USD"
        if base < 0:
            return JsonResponse({"error": "price_cents: not negative"}, status=400)
        answer = {"html": str(zone_price_lines(base_price_cents=base, currency=currency)), "country": None}
        country = request.GET.get("country", "").strip().upper()
        if country:
            zone = zone_for_country(iso_code=country)
            multiplier = zone.pricing_multiplier if zone else ZONES["A"].multiplier
            price = zone_price_cents(base_price_cents=base, multiplier=multiplier, currency=currency)
            shown = format_money(price, currency)
            answer["country"] = (
                f"{country}: zone {zone.zone} ({zone.zone_name}, x{multiplier}): {shown}"
                if zone
                else f"{country}: no zone, the zone-A price {shown}"
            )
        return JsonResponse(answer)


def zone_price_lines(*, base_price_cents: int, currency: str) -> str:
    return format_html_join(
        "",
        '<div class="zone-price">Zone {} ({}, x{}): {} {}{}</div>',
        (
            (
                line.zone,
                line.zone_name,
                line.multiplier,
                format_major_units(line.price_cents, currency),
                currency,
                f" - {line.countries} countries" if line.countries else " - default, no country yet",
            )
            for line in plan_zone_prices(base_price_cents=base_price_cents, currency=currency)
        ),
    )


def is_referenced(plan: Plan) -> bool:
    """Has anything been sold or granted under this plan?"""
    return any(
        related.related_model.objects.filter(**{related.field.name: plan}).exists()
        for related in plan._meta.related_objects
        if related.one_to_many and related.related_model is not Plan
    )


class PricingZoneForm(forms.ModelForm):
    class Meta:
        model = PricingZone
        fields = [
            "country",
            "iso_code",
            "zone",
            "world_bank_classification",
            "gni_per_capita_threshold",
            "pricing_multiplier",
        ]

    def clean(self):
        data = super().clean()
        spec = ZONES.get(data.get("zone") or "")
        if spec is not None:
            self.instance.zone_name = spec.zone_name  # named by the zone, never typed
        return data


@admin.register(PricingZone)
class PricingZoneAdmin(AuditedAdmin, admin.ModelAdmin):
    form = PricingZoneForm
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
    readonly_fields = ["id", "zone_name", "created_at", "updated_at"]
    ordering = ["iso_code"]
    actions = ["change_zone_multiplier"]
    change_list_template = "admin/pricing/pricingzone/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "iso_code"] if obj else fields  # a zone row is a country's: not renamed

    def get_actions(self, request):
        # A zone is deleted one at a time, with the reason its delete page asks for.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "zone-multiplier/",
                wrap(lambda r: admin_zones.zone_multiplier_view(self, r)),
                name="pricing_pricingzone_zone_multiplier",
            ),
            path(
                "import/", wrap(lambda r: admin_zones.import_view(self, r)), name="pricing_pricingzone_import"
            ),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        saved, _ = pricing_zone_upsert(
            iso_code=obj.iso_code,
            country=obj.country,
            zone=obj.zone,
            zone_name=obj.zone_name,
            pricing_multiplier=obj.pricing_multiplier,
            world_bank_classification=obj.world_bank_classification,
            gni_per_capita_threshold=obj.gni_per_capita_threshold,
            reason=request.POST.get("audit_reason", ""),
        )
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request, obj):
        pricing_zone_delete(iso_code=obj.iso_code, reason=request.POST.get("audit_reason", ""))

    @admin.action(
        description="Change the multiplier of the selected countries' zone\u2026", permissions=["change"]
    )
    def change_zone_multiplier(self, request, queryset):
        zone = admin_zones.zone_of(queryset)
        if zone is None:
            self.message_user(request, "Select countries of one zone.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:pricing_pricingzone_zone_multiplier") + f"?zone={zone}")
