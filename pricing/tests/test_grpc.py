"""gRPC pricing.v1.PricingService: the REST reads' answers and errors, from the same selectors."""

import grpc
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from jia_payments.protos.pricing.v1 import pricing_pb2 as pb
from jia_payments.protos.pricing.v1.pricing_pb2_grpc import PricingServiceStub
from pricing.models import PricingZone
from pricing.tests.cases import BAD_PRICE_QUERIES
from pricing.tests.factories import PricingZoneFactory
from testsupport.grpc import field_errors, plain, reason_of, rest_like


@pytest.fixture
def catalog(db):
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)


@pytest.fixture
def pricing(grpc_channel):
    return PricingServiceStub(grpc_channel)


def rest(path: str, query: dict | None = None) -> dict:
    response = APIClient().get(path, query or {})
    assert response.status_code == 200
    return response.json()


def test_prices_in_india_are_rest_s_prices(pricing, catalog):
    answer = pricing.GetPrices(pb.GetPricesRequest(country="IN"))
    assert [plain(price) for price in answer.prices] == rest("/api/v1/prices/", {"country": "IN"})["results"]
    assert plain(answer.prices[1]) == {
        "plan_id": "premium_monthly",
        "country": "IN",
        "zone": "C",
        "zone_name": "Mid-Low",
        "multiplier": "0.40",
        "base_price_cents": 999,
        "price_cents": 400,
        "currency": "USD",
    }


def test_one_plan_in_a_country_without_a_zone_is_zone_a_with_no_zone(pricing, catalog):
    PricingZone.objects.filter(iso_code="IN").delete()
    answer = pricing.GetPrices(pb.GetPricesRequest(country="in", plan_id="premium_monthly"))
    assert [plain(price) for price in answer.prices] == [
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
    assert not answer.prices[0].HasField("zone")


@pytest.mark.parametrize(("request_fields", "errors"), BAD_PRICE_QUERIES)
def test_prices_reject_nonsense_with_the_field_errors_in_the_details(pricing, request_fields, errors):
    with pytest.raises(grpc.RpcError) as raised:
        pricing.GetPrices(pb.GetPricesRequest(**request_fields))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "The request has invalid fields."
    assert field_errors(raised.value) == errors
    assert reason_of(raised.value) == "invalid"


def test_price_of_an_unknown_plan_is_not_found(pricing, catalog):
    with pytest.raises(grpc.RpcError) as raised:
        pricing.GetPrices(pb.GetPricesRequest(country="IN", plan_id="nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert (raised.value.details(), reason_of(raised.value)) == ("No such plan.", "not_found")


def test_plans_are_rest_s_plans_with_the_count_of_all(pricing, catalog):
    answer = pricing.ListPlans(pb.ListPlansRequest(limit=2, offset=1))
    body = rest("/api/v1/plans/", {"limit": 2, "offset": 1})
    assert [plain(plan) for plan in answer.plans] == body["results"]
    assert answer.total == body["count"] == 5
    assert [plan.id for plan in pricing.ListPlans(pb.ListPlansRequest()).plans] == [
        "free",
        "premium_monthly",
        "family_monthly",
        "premium_yearly",
        "lifetime",
    ]


@pytest.mark.parametrize(
    ("limit", "offset", "field"), [(101, 0, "limit"), (-1, 0, "limit"), (0, -3, "offset")]
)
def test_pages_out_of_bounds_are_invalid_as_in_rest(pricing, limit, offset, field):
    with pytest.raises(grpc.RpcError) as raised:
        pricing.ListPlans(pb.ListPlansRequest(limit=limit, offset=offset))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bound = "between 1 and 100" if field == "limit" else "between 0 and 1000000000"
    assert field_errors(raised.value) == {field: [f"Must be a whole number {bound}."]}


def test_zone_in_any_case_is_rest_s_zone(pricing, catalog):
    answer = pricing.GetPricingZone(pb.GetPricingZoneRequest(iso_code="xk"))
    assert plain(answer.zone) == rest_like(rest("/api/v1/pricing-zones/XK/"))
    assert (answer.zone.zone, answer.zone.pricing_multiplier) == ("B", "0.70")


@pytest.mark.parametrize("iso_code", ["ZZ", "", "IND", "\x00\x00", "I\x00"])
def test_unknown_zone_is_not_found(pricing, catalog, iso_code):
    with pytest.raises(grpc.RpcError) as raised:
        pricing.GetPricingZone(pb.GetPricingZoneRequest(iso_code=iso_code))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_zone_list_filters_as_rest(pricing):
    india = PricingZoneFactory()
    brazil = PricingZoneFactory(iso_code="BR", country="Brazil", zone="B", zone_name="Mid-High")

    def codes(**filters):
        answer = pricing.ListPricingZones(pb.ListPricingZonesRequest(**filters))
        return [zone.iso_code for zone in answer.zones], answer.total

    assert codes() == (["BR", "IN"], 2)
    assert codes(zone="B") == (["BR"], 1)
    assert codes(country="iNdIa") == (["IN"], 1)
    assert codes(iso_code="in") == (["IN"], 1)
    assert codes(zone="B", country="India") == ([], 0)
    answer = pricing.ListPricingZones(pb.ListPricingZonesRequest())
    assert [plain(zone) for zone in answer.zones] == [
        rest_like(zone) for zone in rest("/api/v1/pricing-zones/")["results"]
    ]
    assert {india.iso_code, brazil.iso_code} == {"IN", "BR"}


def test_zone_list_pages_count_all_the_seed_data(pricing, catalog):
    answer = pricing.ListPricingZones(pb.ListPricingZonesRequest(limit=100, offset=200))
    assert (answer.total, len(answer.zones)) == (219, 19)


@pytest.mark.parametrize(
    ("filters", "errors"),
    [
        ({"zone": "E"}, {"zone": ['"E" is not a valid choice.']}),
        ({"iso_code": "ZZ"}, {"iso_code": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}),
        ({"country": "x" * 101}, {"country": ["Ensure this field has no more than 100 characters."]}),
    ],
)
def test_zone_list_rejects_nonsense_filters(pricing, filters, errors):
    with pytest.raises(grpc.RpcError) as raised:
        pricing.ListPricingZones(pb.ListPricingZonesRequest(**filters))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(raised.value) == errors
