"""POST/GET /api/v1/checkout/sessions/: zone price fixed at creation, country and its source,
a Stripe Checkout Session (localstripe) created with our id, free plans granted at once."""

from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta
from django.test import override_settings

from entitlements.models import Entitlement
from jia_payments.core.models import OutboxEvent
from payments.models import CheckoutSession
from pricing.tests.factories import FeatureFactory, PlanFactory, PricingZoneFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout/sessions/"
BODY = {"success_url": "https://app.example/ok", "cancel_url": "https://app.example/cancel"}


@pytest.fixture
def zones():
    PricingZoneFactory(
        iso_code="IN", country="India", zone="C", zone_name="Mid-Low", pricing_multiplier=Decimal("0.40")
    )
    PricingZoneFactory(
        iso_code="BR", country="Brazil", zone="B", zone_name="Mid-High", pricing_multiplier=Decimal("0.70")
    )
    PricingZoneFactory(
        iso_code="ET",
        country="Ethiopia",
        zone="D",
        zone_name="Low-Income",
        pricing_multiplier=Decimal("0.20"),
    )


@pytest.fixture
def monthly():
    return PlanFactory(
        id="premium_monthly", name="Premium", price_cents=999, features=[FeatureFactory(code="ai")]
    )


@override_settings(CHECKOUT_COUNTRY_HEADER="CF-IPCountry")
def test_an_end_user_in_india_pays_the_zone_c_price_from_the_edge_header(
    api_client_for, zones, monthly, localstripe
):
    client = api_client_for("user_priya")
    response = client.post(URL, {**BODY, "plan_id": "premium_monthly"}, format="json", HTTP_CF_IPCOUNTRY="IN")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["amount"], body["currency"], body["zone"], body["status"]) == (400, "USD", "C", "open")
    assert body["url"].startswith(localstripe.url + "/checkout/pay/cs_test_")
    row = CheckoutSession.objects.get(pk=body["id"])
    assert (row.user_id, row.country, row.country_source, row.multiplier) == (
        "user_priya",
        "IN",
        "edge_header",
        Decimal("0.40"),
    )
    assert row.stripe_session_id == body["stripe_session_id"]
    stripe_session = localstripe.get(f"/v1/checkout/sessions/{row.stripe_session_id}")
    assert (stripe_session["mode"], stripe_session["amount_total"], stripe_session["currency"]) == (
        "subscription",
        400,
        "usd",
    )
    assert stripe_session["client_reference_id"] == str(row.pk)
    assert stripe_session["metadata"] == {
        "checkout_session_id": str(row.pk),
        "user_id": "user_priya",
        "plan_id": "premium_monthly",
        "zone": "C",
    }
    assert list(OutboxEvent.objects.values_list("type", "aggregate_id")) == [
        ("checkout.session.created", str(row.pk))
    ]


@override_settings(CHECKOUT_COUNTRY_HEADER="CF-IPCountry")
@pytest.mark.parametrize(
    ("edge", "requested", "country", "source", "amount"),
    [
        ("XX", "IN", "IN", "request", 400),  # Cloudflare's "unknown": the request's country
        ("", "IN", "IN", "request", 400),
        ("", None, "", "unknown", 999),  # nothing known: zone A
        ("", "AQ", "AQ", "request", 999),  # no zone for it: zone A
        ("ET", "IN", "ET", "edge_header", 200),  # the edge wins for an end user
    ],
)
def test_country_for_an_end_user(api_client_for, zones, monthly, edge, requested, country, source, amount):
    body = {**BODY, "plan_id": "premium_monthly", **({"country": requested} if requested else {})}
    response = api_client_for("user_1").post(URL, body, format="json", HTTP_CF_IPCOUNTRY=edge)
    assert response.status_code == 201, response.json()
    row = CheckoutSession.objects.get(pk=response.json()["id"])
    assert (row.country, row.country_source, row.amount) == (country, source, amount)


@override_settings(CHECKOUT_COUNTRY_HEADER="CF-IPCountry")
def test_a_service_names_the_buyer_and_country_and_the_edge_header_is_ignored(service_client, zones, monthly):
    response = service_client.post(
        URL, {**BODY, "plan_id": "premium_monthly", "user_id": "user_2", "country": "in"}, format="json",
        HTTP_CF_IPCOUNTRY="ET",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    row = CheckoutSession.objects.get(pk=response.json()["id"])
    assert (row.user_id, row.country, row.country_source, row.amount) == ("user_2", "IN", "request", 400)
    missing = service_client.post(URL, {**BODY, "plan_id": "premium_monthly"}, format="json")
    assert missing.status_code == 422  # well-formed: what a service must send is not the schema's
    assert missing.json()["errors"] == {"user_id": ["A service or staff must name the buyer."]}


def test_prices_round_half_up_once_and_never_below_stripes_minimum(service_client, zones):
    PlanFactory(id="odd", price_cents=1035)  # x 0.70 = 724.5
    PlanFactory(id="cheap", price_cents=100)  # x 0.20 = 20, below USD 0.50
    odd = service_client.post(URL, {**BODY, "plan_id": "odd", "user_id": "u", "country": "BR"}, format="json")
    cheap = service_client.post(
        URL, {**BODY, "plan_id": "cheap", "user_id": "u", "country": "ET"}, format="json"
    )
    assert (odd.json()["amount"], odd.json()["zone"]) == (725, "B")
    assert (cheap.json()["amount"], cheap.json()["zone"]) == (50, "D")


def test_the_price_is_fixed_at_creation(service_client, zones, monthly):
    response = service_client.post(
        URL, {**BODY, "plan_id": "premium_monthly", "user_id": "u", "country": "IN"}, format="json"
    )
    PricingZoneFactory._meta.model.objects.filter(iso_code="IN").update(pricing_multiplier=Decimal("0.70"))
    monthly.price_cents = 5000
    monthly.save()
    again = service_client.get(URL + response.json()["id"] + "/")
    assert (again.json()["amount"], again.json()["multiplier"]) == (400, "0.40")


def test_a_one_time_plan_is_a_payment_mode_session(service_client, localstripe):
    PlanFactory(id="lifetime", billing_cycle="one_time", price_cents=29999)
    response = service_client.post(URL, {**BODY, "plan_id": "lifetime", "user_id": "u"}, format="json")
    stripe_session = localstripe.get(f"/v1/checkout/sessions/{response.json()['stripe_session_id']}")
    assert (stripe_session["mode"], stripe_session["amount_total"]) == ("payment", 29999)


def test_a_free_plan_never_reaches_stripe_and_is_granted_at_once(api_client_for, localstripe):
    PlanFactory(
        id="free", price_cents=0, features=[FeatureFactory(code="calendar"), FeatureFactory(code="lists")]
    )
    before = len(localstripe.get("/v1/checkout/sessions", limit=100)["data"])
    response = api_client_for("user_3").post(URL, {**BODY, "plan_id": "free"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["amount"], body["url"], body["stripe_session_id"]) == (
        "complete",
        0,
        None,
        None,
    )
    assert len(localstripe.get("/v1/checkout/sessions", limit=100)["data"]) == before
    granted = Entitlement.objects.filter(user_id="user_3")
    assert sorted(granted.values_list("feature_id", flat=True)) == ["calendar", "lists"]
    # a free plan's grant lasts its billing period, like any grant (entitlements_grant_plan)
    assert {
        (e.plan_id, e.payment_id, e.expires_at - relativedelta(months=1) == e.granted_at) for e in granted
    } == {("free", None, True)}
    assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "entitlement.created",
        "entitlement.created",
        "checkout.session.created",
        "checkout.session.completed",
    ]


def test_a_family_plan_gets_a_family_and_only_a_family_plan_takes_one(service_client):
    PlanFactory(id="family", price_cents=1999, max_users=6)
    PlanFactory(id="solo", price_cents=999)
    family = service_client.post(URL, {**BODY, "plan_id": "family", "user_id": "u"}, format="json")
    assert family.json()["family_id"] is not None
    solo = service_client.post(
        URL,
        {**BODY, "plan_id": "solo", "user_id": "u", "family_id": family.json()["family_id"]},
        format="json",
    )
    assert (solo.status_code, solo.json()["code"]) == (422, "unprocessable")


def test_unknown_or_inactive_plan_is_404(service_client):
    PlanFactory(id="old", active=False)
    for plan_id in ("nope", "old"):
        response = service_client.post(URL, {**BODY, "plan_id": plan_id, "user_id": "u"}, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not CheckoutSession.objects.exists()


def test_only_the_owner_a_service_or_staff_sees_a_session(
    api_client_for, service_client, staff_client, monthly
):
    created = api_client_for("owner").post(URL, {**BODY, "plan_id": "premium_monthly"}, format="json").json()
    detail = URL + created["id"] + "/"
    assert api_client_for("owner").get(detail).status_code == 200
    assert service_client.get(detail).status_code == 200
    assert staff_client.get(detail).status_code == 200
    assert api_client_for("someone_else").get(detail).status_code == 404
    other = api_client_for("someone_else").post(
        URL, {**BODY, "plan_id": "premium_monthly", "user_id": "owner"}
    )
    assert other.status_code == 404


def test_anonymous_is_401(anon_client, monthly):
    response = anon_client.post(URL, {**BODY, "plan_id": "premium_monthly"}, format="json")
    assert (response.status_code, response["Content-Type"]) == (401, "application/problem+json")


def test_stripe_down_is_503_and_leaves_no_open_session(service_client, monthly):
    with override_settings(STRIPE_API_BASE="http://127.0.0.1:9", STRIPE_MAX_NETWORK_RETRIES=0):
        response = service_client.post(
            URL, {**BODY, "plan_id": "premium_monthly", "user_id": "u"}, format="json"
        )
    assert (response.status_code, response.json()["code"]) == (503, "stripe_unavailable")
    assert list(CheckoutSession.objects.values_list("status", "stripe_session_id")) == [("expired", "")]
    assert not OutboxEvent.objects.exists()


def test_a_country_that_is_not_an_iso_code_or_an_unknown_field_is_400(service_client, monthly):
    bad = service_client.post(
        URL, {**BODY, "plan_id": "premium_monthly", "user_id": "u", "country": "ZZ"}, format="json"
    )
    assert (bad.status_code, list(bad.json()["errors"])) == (400, ["country"])
    typo = service_client.post(
        URL, {**BODY, "plan_id": "premium_monthly", "user_id": "u", "contry": "IN"}, format="json"
    )
    assert (typo.status_code, list(typo.json()["errors"])) == (400, ["contry"])
    assert not CheckoutSession.objects.exists()


def test_the_same_idempotency_key_replays_the_first_session(service_client, monthly, localstripe):
    body = {**BODY, "plan_id": "premium_monthly", "user_id": "u", "country": "IN"}
    first = service_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    again = service_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert CheckoutSession.objects.count() == 1
    other = service_client.post(URL, {**body, "country": "BR"}, format="json", HTTP_IDEMPOTENCY_KEY="buy-1")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


def test_a_checkout_writes_one_log_line_however_often_it_calls_stripe(
    api_client_for, zones, monthly, localstripe
):
    from testsupport.logcapture import capture_logs

    client = api_client_for("user_priya")
    with capture_logs() as logs:
        response = client.post(URL, {**BODY, "plan_id": "premium_monthly", "country": "IN"}, format="json")
    assert response.status_code == 201, response.json()
    assert [(line["event"], line.get("status")) for line in logs.lines()] == [("request_finished", 201)]
