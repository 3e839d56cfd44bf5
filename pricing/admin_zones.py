"""Pricing-zone pages of Django admin: change a whole zone's multiplier, import a World Bank file.
Each shows what it will change first, then calls the pricing services."""

from pathlib import Path

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from pricing.income_groups import IncomeGroupFileError, parse_income_groups
from pricing.models import PricingZone
from pricing.money import format_money
from pricing.selectors import income_groups_changes, zone_multiplier_preview
from pricing.services import pricing_zone_set_multiplier, pricing_zones_import
from pricing.zones import ZONE_CHOICES, ZONES, multiplier_errors, multiplier_range

DATA = Path(__file__).resolve().parent / "data"


def _bundled_files() -> list[tuple[str, str]]:
    return [(path.name, path.name) for path in sorted(DATA.glob("world_bank_income_groups_*.csv"))]


class ZoneMultiplierForm(forms.Form):
    zone = forms.ChoiceField(choices=ZONE_CHOICES)
    pricing_multiplier = forms.DecimalField(max_digits=5, decimal_places=2, label="New multiplier")
    reason = forms.CharField(max_length=500, help_text="Kept in the audit trail of every country changed")
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = multiplier_range()
        self.fields["pricing_multiplier"].help_text = f"Between {low} and {high}"

    def clean_pricing_multiplier(self):
        value = self.cleaned_data["pricing_multiplier"]
        if problems := multiplier_errors(value):
            raise ValidationError(problems)
        return value


class ImportForm(forms.Form):
    bundled = forms.ChoiceField(
        required=False, label="A file in the repository", choices=[("", "-"), *_bundled_files()]
    )
    upload = forms.FileField(required=False, label="or upload a CSV")
    csv_text = forms.CharField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(max_length=500, help_text="Kept in the audit trail of every country changed")
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("upload"):
            data["csv_text"] = data["upload"].read().decode("utf-8-sig", errors="replace")
        elif data.get("bundled"):
            data["csv_text"] = (DATA / data["bundled"]).read_text(encoding="utf-8")
        if not data.get("csv_text"):
            raise ValidationError("Choose a file of the repository or upload one.")
        try:
            data["rows"], data["skipped"] = parse_income_groups(
                data["csv_text"].splitlines(), name="the file"
            )
        except IncomeGroupFileError as error:
            raise ValidationError(str(error)) from None
        return data


def _page(model_admin, request, template, **context) -> TemplateResponse:
    return TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": PricingZone._meta, **context},
    )


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:pricing_pricingzone_changelist"))


def _money(change) -> dict:
    return {
        "plan": change.plan_name,
        "before": format_money(change.before_cents, change.currency),
        "after": format_money(change.after_cents, change.currency),
    }


def zone_multiplier_view(model_admin, request):
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    initial = {"zone": request.GET.get("zone", "C")}
    initial["pricing_multiplier"] = ZONES.get(initial["zone"], ZONES["C"]).multiplier
    form = ZoneMultiplierForm(request.POST or None, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        zone, multiplier = form.cleaned_data["zone"], form.cleaned_data["pricing_multiplier"]
        if form.cleaned_data["confirmed"]:
            changed = pricing_zone_set_multiplier(
                zone=zone, multiplier=multiplier, reason=form.cleaned_data["reason"]
            )
            model_admin.message_user(
                request, f"Zone {zone}: {changed} countries now at x{multiplier}.", messages.SUCCESS
            )
            return _back()
        found = zone_multiplier_preview(zone=zone, multiplier=multiplier)
        preview = {
            "zone": zone,
            "multiplier": multiplier,
            "countries": found.countries,
            "changing": found.changing,
            "current": ", ".join(f"x{m}" for m in found.current) or "-",
            "plans": [_money(p) for p in found.plans],
        }
    return _page(
        model_admin,
        request,
        "admin/pricing/pricingzone/zone_multiplier.html",
        form=form,
        preview=preview,
        title="Change the multiplier of a whole zone",
    )


def import_view(model_admin, request):
    if not model_admin.has_change_permission(request) or not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = ImportForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        rows = form.cleaned_data["rows"]
        if form.cleaned_data["confirmed"]:
            created, updated = pricing_zones_import(rows=rows, reason=form.cleaned_data["reason"])
            model_admin.message_user(
                request, f"Imported: {created} countries added, {updated} updated.", messages.SUCCESS
            )
            return _back()
        changes = income_groups_changes(rows=rows)
        preview = {
            "rows": len(rows),
            "skipped": form.cleaned_data["skipped"],
            "moving": [
                {"change": c, "prices": [_money(p) for p in c.plans if p.before_cents != p.after_cents]}
                for c in changes
                if c.kind != "absent"
            ],
            "absent": [c for c in changes if c.kind == "absent"],
            "csv_text": form.cleaned_data["csv_text"],
            "reason": form.cleaned_data["reason"],
        }
    return _page(
        model_admin,
        request,
        "admin/pricing/pricingzone/import.html",
        form=form,
        preview=preview,
        title="Import a World Bank income classification",
    )


def zone_of(queryset) -> str | None:
    """The one zone of the selected rows (None when they span several)."""
    zones = set(queryset.values_list("zone", flat=True))
    return zones.pop() if len(zones) == 1 else None
