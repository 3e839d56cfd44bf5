import csv
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command

from pricing.models import Feature, Plan, PricingZone

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data"
FY2027 = DATA / "world_bank_income_groups_fy2027.csv"
ZONE_OF_GROUP = {
    "High income": "A",
    "Upper middle income": "B",
    "Lower middle income": "C",
    "Low income": "D",
}


def _snapshot():
    zones = list(PricingZone.objects.order_by("iso_code").values())
    plans = list(Plan.objects.order_by("id").values())
    links = sorted(Plan.features.through.objects.values_list("plan_id", "feature_id"))
    features = list(Feature.objects.order_by("code").values())
    return zones, plans, links, features


def test_fixtures_load_twice_without_change():
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    first = _snapshot()
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    assert _snapshot() == first


def test_zone_counts_match_the_csv():
    call_command("loaddata", "pricing_zones", verbosity=0)
    with open(FY2027, newline="", encoding="utf-8") as handle:
        expected = Counter(ZONE_OF_GROUP[row["income_group"]] for row in csv.DictReader(handle))
    expected["A"] += 1  # the Channel Islands row is two zones, Jersey and Guernsey
    actual = Counter(PricingZone.objects.values_list("zone", flat=True))
    assert actual == expected == Counter({"A": 88, "B": 59, "C": 47, "D": 25})


@pytest.mark.parametrize(
    ("iso_code", "zone", "multiplier"),
    [
        ("US", "A", "1.00"),
        ("GB", "A", "1.00"),
        ("DE", "A", "1.00"),
        ("JP", "A", "1.00"),
        ("JE", "A", "1.00"),
        ("GG", "A", "1.00"),
        ("CN", "B", "0.70"),
        ("BR", "B", "0.70"),
        ("IN", "C", "0.40"),
        ("AF", "D", "0.20"),
        ("ET", "D", "0.20"),
        ("UG", "D", "0.20"),
    ],
)
def test_countries_are_in_their_zones(iso_code, zone, multiplier):
    call_command("loaddata", "pricing_zones", verbosity=0)
    pricing_zone = PricingZone.objects.get(iso_code=iso_code)
    assert (pricing_zone.zone, str(pricing_zone.pricing_multiplier)) == (zone, multiplier)


def test_catalog_has_the_plans_the_product_sells():
    call_command("loaddata", "catalog", verbosity=0)
    plans = {plan.id: plan for plan in Plan.objects.all()}
    assert plans["free"].price_cents == 0
    assert plans["premium_monthly"].billing_cycle == "monthly"
    assert plans["premium_yearly"].billing_cycle == "yearly"
    assert (plans["family_monthly"].billing_cycle, plans["family_monthly"].max_users) == ("monthly", 6)
    assert plans["lifetime"].billing_cycle == "one_time"
    assert all(plan.features.exists() for plan in plans.values())


def test_the_shipped_fixture_is_what_the_command_generates(tmp_path):
    generated = tmp_path / "zones.json"
    call_command("import_income_groups", str(FY2027), fixture=generated, verbosity=0)
    shipped = Path(__file__).resolve().parents[2] / "fixtures" / "pricing_zones.json"
    assert generated.read_text() == shipped.read_text()
