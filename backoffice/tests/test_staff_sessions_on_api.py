"""A staff user logged in to admin is staff on the API too, but changes through it only what its
groups let it change in admin: `support` cannot refund, move a payment or change prices there, so
it cannot through the API either; `finance` can. Reads stay open to every staff session."""

from decimal import Decimal

import pytest

from entitlements.models import Entitlement, FamilyMember
from entitlements.tests.factories import FamilyMemberFactory, OwnedFamilyFactory
from payments.models import CheckoutSession, Payment, Refund
from payments.tests.factories import PaymentFactory
from pricing.models import PricingZone
from pricing.tests.factories import PlanFactory, PricingZoneFactory

pytestmark = pytest.mark.django_db

ZONE_B = {"country": "India", "zone": "B", "zone_name": "Mid-High", "pricing_multiplier": "0.70"}


def _post(client, path: str, body: dict, method: str = "post"):
    return getattr(client, method)(path, body, content_type="application/json")


def test_support_cannot_refund_move_or_reprice_through_the_api(as_staff):
    completed = PaymentFactory(payment_method=Payment.Method.BANK_TRANSFER, status=Payment.Status.COMPLETED)
    pending = PaymentFactory()
    PricingZoneFactory(iso_code="IN")
    client = as_staff("sue", "support")

    answers = [
        _post(client, f"/api/v1/payments/{completed.pk}/refund/", {"reason": "asked"}),
        _post(client, f"/api/v1/payments/{pending.pk}/status/", {"status": "completed"}),
        _post(client, "/api/v1/pricing-zones/IN/", ZONE_B, "put"),
        client.delete("/api/v1/pricing-zones/IN/"),
        _post(client, "/api/v1/pricing-zones/bulk-upsert/", [{"iso_code": "IN", **ZONE_B}]),
    ]

    assert [(a.status_code, a.json()["code"]) for a in answers] == [(403, "permission_denied")] * 5
    assert answers[0].json()["detail"] == "Your admin groups do not allow this change."
    assert not Refund.objects.exists()
    completed.refresh_from_db()
    pending.refresh_from_db()
    assert (completed.status, completed.refunded_amount, pending.status) == ("completed", 0, "pending")
    zone = PricingZone.objects.get(iso_code="IN")
    assert (zone.zone, zone.pricing_multiplier) == ("C", Decimal("0.40"))
    # what support does in admin, it may do through the API
    assert client.get(f"/api/v1/payments/{completed.pk}/").status_code == 200
    PlanFactory(id="premium_monthly")
    granted = _post(
        client,
        "/api/v1/entitlements/grants/",
        {"user_id": "u1", "plan_id": "premium_monthly", "reason": "promo"},
    )
    assert granted.status_code == 201


def test_a_staff_session_without_groups_changes_nothing(as_staff):
    PlanFactory(id="premium_monthly")
    pending = PaymentFactory()
    client = as_staff("nobody")
    answers = [
        _post(client, "/api/v1/entitlements/grants/", {"user_id": "u1", "plan_id": "premium_monthly"}),
        _post(client, f"/api/v1/payments/{pending.pk}/status/", {"status": "completed"}),
    ]
    assert [a.status_code for a in answers] == [403, 403]
    assert not Entitlement.objects.exists()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_finance_may_move_and_reprice_through_the_api(as_staff):
    pending = PaymentFactory()
    PricingZoneFactory(iso_code="IN")
    client = as_staff("fin", "finance")

    moved = _post(client, f"/api/v1/payments/{pending.pk}/status/", {"status": "completed"})
    repriced = _post(client, "/api/v1/pricing-zones/IN/", ZONE_B, "put")

    assert (moved.status_code, moved.json()["status"]) == (200, "completed")
    assert (repriced.status_code, repriced.json()["zone"]) == (200, "B")


SUBSCRIPTION = "/api/v1/subscriptions/5f0c2a3e-8b1d-4c6e-9f7a-2d3b4c5e6f70"
PAYMENT = {"amount": 1999, "currency": "USD", "payment_method": "bank_transfer", "customer_id": "u1"}
CHECKOUT = {
    "plan_id": "premium_monthly",
    "success_url": "https://app.example/ok",
    "cancel_url": "https://app.example/cancel",
    "user_id": "u1",
}


@pytest.mark.parametrize("groups", [("support",), ()])
def test_support_or_no_group_cannot_change_subscriptions_or_create_payments_or_checkouts(as_staff, groups):
    PlanFactory(id="premium_monthly")
    client = as_staff("sue", *groups)
    answers = [
        _post(client, f"{SUBSCRIPTION}/change/", {"plan_id": "premium_monthly"}),
        _post(client, f"{SUBSCRIPTION}/cancel/", {}),
        _post(client, f"{SUBSCRIPTION}/resume/", {}),
        _post(
            client, "/api/v1/billing-portal/sessions/", {"return_url": "https://a.example", "user_id": "u1"}
        ),
        _post(client, "/api/v1/payments/", PAYMENT),
        _post(client, "/api/v1/checkout/sessions/", CHECKOUT),
    ]
    assert [(a.status_code, a.json()["detail"]) for a in answers] == [
        (403, "Your admin groups do not allow this change.")
    ] * 6
    assert not Payment.objects.exists()
    assert not CheckoutSession.objects.exists()


def test_a_staff_session_without_groups_cannot_manage_families_and_support_can(as_staff):
    family = OwnedFamilyFactory(owner_user_id="owner")
    FamilyMemberFactory(family=family, user_id="kid")
    members = f"/api/v1/families/{family.pk}/members/"

    nobody = as_staff("nobody")
    refused = [_post(nobody, members, {"user_id": "friend"}), nobody.delete(f"{members}kid/")]
    assert [a.status_code for a in refused] == [403, 403]
    assert set(FamilyMember.objects.values_list("user_id", flat=True)) == {"owner", "kid"}
    assert nobody.get(members).status_code == 200

    support = as_staff("sue", "support")
    assert _post(support, members, {"user_id": "friend"}).status_code == 201
    assert support.delete(f"{members}kid/").status_code == 204
    assert set(FamilyMember.objects.values_list("user_id", flat=True)) == {"owner", "friend"}


def test_finance_may_create_a_payment_and_reach_a_subscription(as_staff):
    client = as_staff("fin", "finance")
    created = _post(client, "/api/v1/payments/", PAYMENT)
    assert created.status_code == 201, created.content
    assert created.json()["customer_id"] == "u1"
    # past the permission: the subscription itself is looked up (and not found)
    assert _post(client, f"{SUBSCRIPTION}/resume/", {}).status_code == 404


def test_every_change_an_api_view_offers_names_the_admin_permissions_a_staff_session_needs():
    from django.urls import get_resolver

    reads = {("EntitlementCheckView", "POST")}  # a batch check, it changes nothing

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            elif hasattr(pattern.callback, "view_class"):
                yield pattern.callback.view_class

    unnamed = {
        (view.__name__, method.upper())
        for view in views(get_resolver().url_patterns)
        if view.__module__.split(".")[0] in ("payments", "entitlements", "pricing")
        and view.__module__.split(".")[-1] != "webhooks"
        for method in ("post", "put", "patch", "delete")
        if hasattr(view, method) and method.upper() not in getattr(view, "session_permissions", {})
    }
    assert unnamed - reads == set()
