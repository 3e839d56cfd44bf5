"""REST API v1, plans, prices and pricing zones: exact bodies, filters, who may write, validation."""

import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command

from pricing.models import PricingZone
from pricing.tests.cases import BAD_PRICE_QUERIES
from pricing.tests.factories import FeatureFactory, PlanFactory, PricingZoneFactory
from testsupport.problems import assert_problem

pytestmark = pytest.mark.django_db

ZONES = "/api/v1/pricing-zones/"


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def zone_body(zone: PricingZone) -> dict:
    zone.refresh_from_db()
    return {
        "id": str(zone.id),
        "country": zone.country,
        "iso_code": zone.iso_code,
        "zone": zone.zone,
        "zone_name": zone.zone_name,
        "world_bank_classification": zone.world_bank_classification,
        "gni_per_capita_threshold": zone.gni_per_capita_threshold,
        "pricing_multiplier": f"{zone.pricing_multiplier:.2f}",
        "created_at": iso(zone.created_at),
        "updated_at": iso(zone.updated_at),
    }


def page(results, count=None, next=None, previous=None) -> dict:
    return {
        "count": len(results) if count is None else count,
        "next": next,
        "previous": previous,
        "results": results,
    }


@pytest.fixture
def catalog():
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)


# --- plans --------------------------------------------------------------------------------

PREMIUM_FEATURES = sorted(
    [
        "family_calendar",
        "shared_lists",
        "location_sharing",
        "photo_vault",
        "chore_tracker",
        "meal_planner",
        "ai_assistant",
        "cloud_storage",
        "ad_free",
    ]
)


def test_plans_are_public_and_list_the_active_ones(anon_client, catalog):
    PlanFactory(id="retired", active=False)
    body = anon_client.get("/api/v1/plans/").json()
    assert body["count"] == 5
    assert [plan["id"] for plan in body["results"]] == [
        "free",
        "premium_monthly",
        "family_monthly",
        "premium_yearly",
        "lifetime",
    ]
    assert body["results"][1] == {
        "id": "premium_monthly",
        "name": "Premium (monthly)",
        "description": body["results"][1]["description"],
        "feature_codes": PREMIUM_FEATURES,
        "billing_cycle": "monthly",
        "price_cents": 999,
        "currency": "USD",
        "max_users": 1,
        "usage_limits": {"storage_gb": 50, "ai_requests_per_day": 50},
    }
    assert body["results"][1]["description"].startswith("Every feature for one person")


def test_plan_detail_exact_body(anon_client):
    plan = PlanFactory(
        id="duo",
        name="Duo",
        description="Two people",
        price_cents=1499,
        billing_cycle="yearly",
        max_users=2,
        usage_limits={"storage_gb": 10},
        features=[FeatureFactory(code="b_feature"), FeatureFactory(code="a_feature")],
    )
    assert anon_client.get(f"/api/v1/plans/{plan.id}/").json() == {
        "id": "duo",
        "name": "Duo",
        "description": "Two people",
        "feature_codes": ["a_feature", "b_feature"],
        "billing_cycle": "yearly",
        "price_cents": 1499,
        "currency": "USD",
        "max_users": 2,
        "usage_limits": {"storage_gb": 10},
    }


def test_unknown_or_inactive_plan_is_404(anon_client):
    PlanFactory(id="retired", active=False)
    assert_problem(anon_client.get("/api/v1/plans/retired/"), 404, "not_found")
    assert_problem(anon_client.get("/api/v1/plans/nope/"), 404, "not_found")
    assert_problem(anon_client.get("/api/v1/plans/bad%20id/"), 404, "not_found")


def test_plan_list_makes_a_fixed_number_of_queries(anon_client, catalog, django_assert_num_queries):
    with django_assert_num_queries(3):  # count, plans, their features
        anon_client.get("/api/v1/plans/")


# --- prices -------------------------------------------------------------------------------


def test_prices_in_india_are_zone_c(anon_client, catalog):
    body = anon_client.get("/api/v1/prices/", {"country": "IN"}).json()
    assert body["count"] == 5
    assert body["results"][1] == {
        "plan_id": "premium_monthly",
        "country": "IN",
        "zone": "C",
        "zone_name": "Mid-Low",
        "multiplier": "0.40",
        "base_price_cents": 999,
        "price_cents": 400,  # 399.6 rounded half-up
        "currency": "USD",
    }
    assert {row["plan_id"]: row["price_cents"] for row in body["results"]} == {
        "free": 0,
        "premium_monthly": 400,
        "family_monthly": 800,
        "premium_yearly": 4000,
        "lifetime": 12000,
    }


def test_price_of_one_plan_in_kosovo_with_a_lower_case_code(anon_client, catalog):
    body = anon_client.get("/api/v1/prices/", {"country": "xk", "plan_id": "family_monthly"}).json()
    assert body == page(
        [
            {
                "plan_id": "family_monthly",
                "country": "XK",
                "zone": "B",
                "zone_name": "Mid-High",
                "multiplier": "0.70",
                "base_price_cents": 1999,
                "price_cents": 1399,  # 1399.3
                "currency": "USD",
            }
        ]
    )


def test_a_country_without_a_zone_pays_the_zone_a_price(anon_client, catalog):
    PricingZone.objects.filter(iso_code="IN").delete()
    body = anon_client.get("/api/v1/prices/", {"country": "IN", "plan_id": "premium_monthly"}).json()
    assert body["results"] == [
        {
            "plan_id": "premium_monthly",
            "country": "IN",
            "zone": None,
            "zone_name": None,
            "multiplier": "1.00",
            "base_price_cents": 999,
            "price_cents": 999,
            "currency": "USD",
        }
    ]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        *BAD_PRICE_QUERIES,
        ({"country": "IN", "limit": "0"}, {"limit": ["Must be a whole number between 1 and 100."]}),
    ],
)
def test_prices_reject_nonsense(anon_client, query, errors):
    assert_problem(anon_client.get("/api/v1/prices/", query), 400, "invalid", errors)


def test_price_of_an_unknown_plan_is_404(anon_client, catalog):
    assert_problem(anon_client.get("/api/v1/prices/", {"country": "IN", "plan_id": "nope"}), 404, "not_found")


# --- pricing zones: reads -----------------------------------------------------------------


def test_zone_list_and_filters(anon_client):
    india = PricingZoneFactory()
    brazil = PricingZoneFactory(iso_code="BR", country="Brazil", zone="B", zone_name="Mid-High")
    assert anon_client.get(ZONES).json() == page([zone_body(brazil), zone_body(india)])
    assert anon_client.get(ZONES, {"zone": "B"}).json() == page([zone_body(brazil)])
    assert anon_client.get(ZONES, {"country": "iNdIa"}).json() == page([zone_body(india)])
    assert anon_client.get(ZONES, {"iso_code": "in"}).json() == page([zone_body(india)])
    assert anon_client.get(ZONES, {"zone": "B", "country": "India"}).json() == page([])


def test_zone_list_counts_the_seed_data(anon_client, catalog):
    body = anon_client.get(ZONES, {"limit": 100, "offset": 200}).json()
    assert body["count"] == 219
    assert len(body["results"]) == 19
    assert body["next"] is None


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"zone": "E"}, {"zone": ['"E" is not a valid choice.']}),
        ({"zone": "a"}, {"zone": ['"a" is not a valid choice.']}),
        ({"iso_code": "ZZ"}, {"iso_code": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}),
        ({"country": "x" * 101}, {"country": ["Ensure this field has no more than 100 characters."]}),
        ({"limit": "-1"}, {"limit": ["Must be a whole number between 1 and 100."]}),
    ],
)
def test_zone_list_rejects_nonsense_filters(anon_client, query, errors):
    assert_problem(anon_client.get(ZONES, query), 400, "invalid", errors)


def test_zone_detail_in_any_case(anon_client):
    india = PricingZoneFactory()
    assert anon_client.get(f"{ZONES}in/").json() == zone_body(india)
    assert anon_client.get(f"{ZONES}IN/").json() == zone_body(india)
    assert_problem(anon_client.get(f"{ZONES}FR/"), 404, "not_found")
    assert_problem(anon_client.get(f"{ZONES}IND/"), 404, "not_found")


# --- pricing zones: writes (staff) --------------------------------------------------------

KOSOVO = {
    "country": "Kosovo",
    "zone": "B",
    "zone_name": "Mid-High",
    "world_bank_classification": "Upper middle income",
    "gni_per_capita_threshold": "$4,496 - $13,935",
    "pricing_multiplier": "0.70",
}


def test_put_creates_201_then_updates_200(staff_client):
    created = staff_client.put(f"{ZONES}xk/", KOSOVO, format="json")
    assert created.status_code == 201
    zone = PricingZone.objects.get(iso_code="XK")
    assert created.json() == zone_body(zone)
    assert created.json()["pricing_multiplier"] == "0.70"
    updated = staff_client.put(
        f"{ZONES}XK/",
        {**KOSOVO, "zone": "C", "zone_name": "Mid-Low", "pricing_multiplier": 0.4},
        format="json",
    )
    assert updated.status_code == 200
    assert updated.json() == {
        **zone_body(zone),
        "zone": "C",
        "zone_name": "Mid-Low",
        "pricing_multiplier": "0.40",
    }
    assert updated.json()["id"] == created.json()["id"]
    assert PricingZone.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            {"zone": "D", "zone_name": "Premium", "pricing_multiplier": "1.00"},
            {"zone_name": ["Zone D is named 'Low-Income'."]},
        ),
        (
            {"pricing_multiplier": "7.50"},
            {"pricing_multiplier": ["Between 0.05 and 1.50, at most two decimal places."]},
        ),
        (
            {"pricing_multiplier": "0.00"},
            {"pricing_multiplier": ["Between 0.05 and 1.50, at most two decimal places."]},
        ),
    ],
)
def test_a_zone_must_match_its_definition_and_the_multiplier_range(staff_client, change, errors):
    assert_problem(
        staff_client.put(f"{ZONES}US/", {**KOSOVO, "country": "United States", **change}, format="json"),
        400,
        "invalid",
        errors,
    )
    assert not PricingZone.objects.exists()


def test_get_modify_put_the_zones_own_representation(staff_client):
    PricingZoneFactory()
    zone = staff_client.get(f"{ZONES}IN/").json()
    changed = {**zone, "zone": "D", "zone_name": "Low-Income", "pricing_multiplier": "0.25", "iso_code": "in"}
    response = staff_client.put(f"{ZONES}IN/", changed, format="json")
    assert response.status_code == 200, response.content
    after = response.json()
    assert after == {
        **zone,
        "zone": "D",
        "zone_name": "Low-Income",
        "pricing_multiplier": "0.25",
        "updated_at": after["updated_at"],
    }
    assert (after["id"], after["created_at"]) == (zone["id"], zone["created_at"])


def test_put_ignores_the_echoed_id_and_timestamps(staff_client):
    PricingZoneFactory()
    before = staff_client.get(f"{ZONES}IN/").json()
    echoed = {"id": str(uuid.uuid4()), "created_at": "2000-01-01T00:00:00Z", "updated_at": "x"}
    response = staff_client.put(f"{ZONES}IN/", {**before, **echoed}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["created_at"]) == (before["id"], before["created_at"])


def test_delete_is_204_then_404(staff_client):
    PricingZoneFactory()
    response = staff_client.delete(f"{ZONES}in/")
    assert response.status_code == 204
    assert response.content == b""
    assert not PricingZone.objects.exists()
    assert_problem(staff_client.delete(f"{ZONES}IN/"), 404, "not_found")


def test_bulk_upsert_counts_created_and_updated(staff_client):
    india = PricingZoneFactory()
    zones = [
        {**KOSOVO, "iso_code": "XK"},
        {
            **KOSOVO,
            "iso_code": "in",
            "country": "India",
            "zone": "D",
            "zone_name": "Low-Income",
            "pricing_multiplier": "0.20",
        },
    ]
    response = staff_client.post(f"{ZONES}bulk-upsert/", zones, format="json")
    assert response.status_code == 200
    assert response.json() == {"created": 1, "updated": 1}
    india.refresh_from_db()
    assert (india.zone, india.pricing_multiplier) == ("D", Decimal("0.20"))


def test_bulk_upsert_is_all_or_nothing(staff_client):
    india = PricingZoneFactory()
    before = zone_body(india)
    zones = [
        {**KOSOVO, "iso_code": "XK"},
        {**KOSOVO, "iso_code": "IN", "country": "India", "zone": "A", "zone_name": "Premium"},
        {**KOSOVO, "iso_code": "ZZ"},
        {**KOSOVO, "iso_code": "FR", "pricing_multiplier": 12},
    ]
    response = staff_client.post(f"{ZONES}bulk-upsert/", zones, format="json")
    assert_problem(
        response,
        400,
        "invalid",
        {
            "[2].iso_code": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."],
            "[3].pricing_multiplier": ["Ensure this value is less than or equal to 9.99."],
        },
    )
    duplicate = [{**KOSOVO, "iso_code": "XK"}, {**KOSOVO, "iso_code": "xk"}]
    assert_problem(  # each zone valid, one country twice: no schema says it, 422
        staff_client.post(f"{ZONES}bulk-upsert/", duplicate, format="json"),
        422,
        "invalid",
        {"[1].iso_code": ["XK is also zone [0] of this request."]},
    )
    assert list(PricingZone.objects.all()) == [india]
    assert zone_body(india) == before


def test_bulk_upsert_refuses_an_empty_list_and_an_empty_object(staff_client):
    assert_problem(
        staff_client.post(f"{ZONES}bulk-upsert/", [], format="json"),
        400,
        "invalid",
        {"non_field_errors": ["This list may not be empty."]},
    )
    assert_problem(
        staff_client.post(f"{ZONES}bulk-upsert/", {"zones": []}, format="json"),
        400,
        "invalid",
        {"zones.non_field_errors": ["This list may not be empty."]},
    )


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"pricing_multiplier": "10.00"}, {"pricing_multiplier": ["A valid number is required."]}),
        ({"pricing_multiplier": "-0.01"}, {"pricing_multiplier": ["A valid number is required."]}),
        ({"pricing_multiplier": "0.701"}, {"pricing_multiplier": ["A valid number is required."]}),
        (
            {"pricing_multiplier": -0.01},
            {"pricing_multiplier": ["Ensure this value is greater than or equal to 0.00."]},
        ),
        (
            {"pricing_multiplier": 0.701},
            {"pricing_multiplier": ["Ensure that there are no more than 2 decimal places."]},
        ),
        ({"zone": "E"}, {"zone": ['"E" is not a valid choice.']}),
        ({"country": "x" * 101}, {"country": ["Ensure this field has no more than 100 characters."]}),
        ({"zone_name": ""}, {"zone_name": ["This field may not be blank."]}),
        ({"iso_code": "ZZ"}, {"iso_code": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}),
        ({"colour": "red"}, {"colour": ["Unknown field."]}),
        ({"multiplier": "0.70"}, {"multiplier": ["Unknown field."]}),
    ],
)
def test_put_validation_writes_nothing(staff_client, change, errors):
    assert_problem(
        staff_client.put(f"{ZONES}XK/", {**KOSOVO, **change}, format="json"), 400, "invalid", errors
    )
    assert not PricingZone.objects.exists()


def test_put_of_a_code_that_is_no_country_is_400(staff_client):
    response = staff_client.put(f"{ZONES}ZZ/", KOSOVO, format="json")
    assert_problem(
        response, 400, "invalid", {"iso_code": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}
    )
    assert not PricingZone.objects.exists()


def test_put_of_another_zones_code_is_422_and_writes_nothing(staff_client):
    """Well-formed (the schema cannot tie the body's code to the URL's), so not 400."""
    response = staff_client.put(f"{ZONES}XK/", {**KOSOVO, "iso_code": "IN"}, format="json")
    assert_problem(response, 422, "invalid", {"iso_code": ["Must be the URL's code (XK) or left out."]})
    assert not PricingZone.objects.exists()


@pytest.mark.parametrize("client_name", ["user_client", "service_client", "anon_client"])
def test_only_staff_write_zones(request, client_name):
    client = request.getfixturevalue(client_name)
    india = PricingZoneFactory()
    expected = (401, "not_authenticated") if client_name == "anon_client" else (403, "permission_denied")
    assert_problem(client.put(f"{ZONES}XK/", KOSOVO, format="json"), *expected)
    assert_problem(client.delete(f"{ZONES}IN/"), *expected)
    assert_problem(
        client.post(f"{ZONES}bulk-upsert/", [{**KOSOVO, "iso_code": "XK"}], format="json"), *expected
    )
    assert list(PricingZone.objects.all()) == [india]
