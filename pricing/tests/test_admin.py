"""Pricing in admin: a whole zone's multiplier, the World Bank import, the plan's live price
preview from the zone rows, and plans deactivated rather than deleted once referenced."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.urls import reverse

from entitlements.tests.factories import EntitlementFactory
from pricing.models import Plan, PricingZone

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def catalog():
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)


def test_changing_zone_c_previews_then_moves_every_country_and_the_api_price(as_staff, catalog, anon_client):
    client = as_staff("fiona", "finance")
    in_zone_c = PricingZone.objects.filter(zone="C").count()
    url = reverse("admin:pricing_pricingzone_zone_multiplier")
    preview = client.post(url, {"zone": "C", "pricing_multiplier": "0.50", "reason": "FY2027 review"})
    html = preview.content.decode()
    assert f'<strong id="zone-countries-changing">{in_zone_c}</strong>' in html
    assert "<td>Premium (monthly)</td><td>4.00 USD</td><td>5.00 USD</td>" in html
    assert PricingZone.objects.filter(zone="C", pricing_multiplier=Decimal("0.40")).count() == in_zone_c

    applied = client.post(
        url, {"zone": "C", "pricing_multiplier": "0.50", "reason": "FY2027 review", "confirmed": "on"}
    )
    assert applied.status_code == 302
    assert set(PricingZone.objects.filter(zone="C").values_list("pricing_multiplier", flat=True)) == {
        Decimal("0.50")
    }
    india = PricingZone.objects.get(iso_code="IN")
    entries = LogEntry.objects.get_for_object(india).filter(action=LogEntry.Action.UPDATE)
    assert [(e.changes_dict, e.actor.username, e.additional_data["reason"]) for e in entries] == [
        ({"pricing_multiplier": ["0.40", "0.50"]}, "fiona", "FY2027 review")
    ]
    prices = anon_client.get("/api/v1/prices/?country=IN&plan_id=premium_monthly").json()
    [price] = prices if isinstance(prices, list) else prices["results"]
    assert (price["multiplier"], price["price_cents"]) == ("0.50", 500)
    plan_page = client.get(reverse("admin:pricing_plan_change", args=["premium_monthly"])).content.decode()
    assert "Zone C (Mid-Low, x0.50): 5.00 USD" in plan_page


def test_a_zone_multiplier_out_of_range_changes_nothing(as_staff, catalog):
    client = as_staff("fiona", "finance")
    url = reverse("admin:pricing_pricingzone_zone_multiplier")
    page = client.post(url, {"zone": "C", "pricing_multiplier": "7.50", "reason": "x", "confirmed": "on"})
    assert "Between 0.05 and 1.50, at most two decimal places." in page.content.decode()
    assert not PricingZone.objects.filter(zone="C").exclude(pricing_multiplier=Decimal("0.40")).exists()


def test_the_zone_form_names_the_zone_and_refuses_a_multiplier_out_of_range(admin_client, catalog):
    us = PricingZone.objects.get(iso_code="US")
    url = reverse("admin:pricing_pricingzone_change", args=[us.pk])
    form = {
        "country": "United States",
        "zone": "D",
        "world_bank_classification": "High income",
        "gni_per_capita_threshold": "",
        "pricing_multiplier": "7.50",
        "audit_reason": "test",
    }
    page = admin_client.post(url, form)
    assert page.status_code == 200 and "Between 0.05 and 1.50" in page.content.decode()
    assert admin_client.post(url, {**form, "pricing_multiplier": "0.20"}).status_code == 302
    us.refresh_from_db()
    assert (us.zone, us.zone_name, us.pricing_multiplier) == ("D", "Low-Income", Decimal("0.20"))


def test_importing_a_world_bank_file_previews_then_applies_as_the_command_does(as_staff, catalog):
    call_command(
        "import_income_groups",
        str(DATA / "world_bank_income_groups_fy2026.csv"),
        apply=True,
        stdout=StringIO(),
    )
    client = as_staff("fiona", "finance")
    url = reverse("admin:pricing_pricingzone_import")
    preview = client.post(url, {"bundled": "world_bank_income_groups_fy2027.csv", "reason": "FY2027"})
    html = preview.content.decode()
    assert "JO Jordan" in html and "C &rarr; B" in html and "x0.40 &rarr; x0.70" in html
    assert "Premium (monthly): 4.00 USD &rarr; 6.99 USD" in html
    assert "TG Togo" in html and "D &rarr; C" in html
    assert PricingZone.objects.get(iso_code="JO").zone == "C"
    csv_text = (DATA / "world_bank_income_groups_fy2027.csv").read_text()
    applied = client.post(url, {"csv_text": csv_text, "reason": "FY2027", "confirmed": "on"})
    assert applied.status_code == 302
    by_admin = dict(PricingZone.objects.values_list("iso_code", "zone"))
    assert by_admin["JO"] == "B" and len(by_admin) == 219
    reasons = {
        e.additional_data.get("reason")
        for e in LogEntry.objects.get_for_object(PricingZone.objects.get(iso_code="JO"))
    }
    assert "FY2027" in reasons


def test_a_bad_file_is_refused(as_staff, catalog):
    client = as_staff("fiona", "finance")
    page = client.post(
        reverse("admin:pricing_pricingzone_import"),
        {"csv_text": "a,b\n1,2\n", "reason": "x", "confirmed": "on"},
    )
    assert "missing columns" in page.content.decode()
    assert PricingZone.objects.count() == 219 or PricingZone.objects.exists()


def test_the_price_preview_uses_the_real_zone_rows(admin_client, catalog):
    PricingZone.objects.filter(iso_code="IN").update(pricing_multiplier=Decimal("0.50"))
    url = reverse("admin:pricing_plan_price_preview")
    answer = admin_client.get(url, {"price_cents": "1999", "currency": "USD", "country": "IN"}).json()
    assert "Zone C (Mid-Low, x0.50): 10.00 USD - 1 countries" in answer["html"]
    assert "Zone C (Mid-Low, x0.40): 8.00 USD" in answer["html"]
    assert answer["country"] == "IN: zone C (Mid-Low, x0.50): 10.00 USD"
    unknown = admin_client.get(url, {"price_cents": "1999", "currency": "USD", "country": "ZZ"}).json()
    assert unknown["country"] == "ZZ: no zone, the zone-A price 19.99 USD"
    assert admin_client.get(url, {"price_cents": "abc"}).status_code == 400


def test_a_plan_in_use_is_deactivated_not_deleted(admin_client, catalog):
    EntitlementFactory(plan_id="premium_monthly", feature_id="family_calendar")
    url = reverse("admin:pricing_plan_delete", args=["premium_monthly"])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    admin_client.post(
        reverse("admin:pricing_plan_changelist"),
        {"action": "deactivate_selected", "_selected_action": ["premium_monthly"], "reason": "retired"},
    )
    assert Plan.objects.get(pk="premium_monthly").active is False


@pytest.mark.parametrize("groups", [(), ("support",)])
def test_zone_pages_are_403_without_the_permission(as_staff, catalog, groups):
    client = as_staff("sam", *groups)
    for name in ("zone_multiplier", "import"):
        assert client.get(reverse(f"admin:pricing_pricingzone_{name}")).status_code == 403
    response = client.post(
        reverse("admin:pricing_pricingzone_zone_multiplier"),
        {"zone": "C", "pricing_multiplier": "0.50", "reason": "x", "confirmed": "on"},
    )
    assert response.status_code == 403
    assert not PricingZone.objects.filter(zone="C", pricing_multiplier=Decimal("0.50")).exists()


def test_zones_are_deleted_one_at_a_time_with_a_reason_never_in_bulk(admin_client, catalog):
    changelist = reverse("admin:pricing_pricingzone_changelist")
    assert 'value="delete_selected"' not in admin_client.get(changelist).content.decode()
    zones = list(PricingZone.objects.values_list("pk", flat=True))
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": zones, "post": "yes"})
    assert PricingZone.objects.count() == len(zones) > 0
