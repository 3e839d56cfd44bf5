"""A staff user logged in to admin is staff on the API too, but changes through it only what its
groups let it change in admin: `support` cannot refund, move a payment or change prices there, so
it cannot through the API either; `finance` can. Reads stay open to every staff session."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from entitlements.models import Entitlement
from payments.models import Payment, Refund
from payments.tests.factories import PaymentFactory
from pricing.models import PricingZone
from pricing.tests.factories import PlanFactory, PricingZoneFactory

pytestmark = pytest.mark.django_db

ZONE_B = {"country": "India", "zone": "B", "zone_name": "Mid-High", "pricing_multiplier": "0.70"}


@pytest.fixture
def session_of(client):
    def login(username: str, *groups: str):
        user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
        user.groups.add(*Group.objects.filter(name__in=groups))
        client.force_login(user)
        return client

    return login


def _post(client, path: str, body: dict, method: str = "post"):
    return getattr(client, method)(path, body, content_type="application/json")


def test_support_cannot_refund_move_or_reprice_through_the_api(session_of):
    completed = PaymentFactory(payment_method=Payment.Method.BANK_TRANSFER, status=Payment.Status.COMPLETED)
    pending = PaymentFactory()
    PricingZoneFactory(iso_code="IN")
    client = session_of("sue", "support")

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


def test_a_staff_session_without_groups_changes_nothing(session_of):
    PlanFactory(id="premium_monthly")
    pending = PaymentFactory()
    client = session_of("nobody")
    answers = [
        _post(client, "/api/v1/entitlements/grants/", {"user_id": "u1", "plan_id": "premium_monthly"}),
        _post(client, f"/api/v1/payments/{pending.pk}/status/", {"status": "completed"}),
    ]
    assert [a.status_code for a in answers] == [403, 403]
    assert not Entitlement.objects.exists()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_finance_may_move_and_reprice_through_the_api(session_of):
    pending = PaymentFactory()
    PricingZoneFactory(iso_code="IN")
    client = session_of("fin", "finance")

    moved = _post(client, f"/api/v1/payments/{pending.pk}/status/", {"status": "completed"})
    repriced = _post(client, "/api/v1/pricing-zones/IN/", ZONE_B, "put")

    assert (moved.status_code, moved.json()["status"]) == (200, "completed")
    assert (repriced.status_code, repriced.json()["zone"]) == (200, "B")
