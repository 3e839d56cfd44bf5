"""The database itself refuses bad rows, whatever code wrote them."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from entitlements.models import Entitlement
from entitlements.tests.factories import EntitlementFactory
from payments.models import Payment
from payments.tests.factories import PaymentFactory
from pricing.models import Plan, PricingZone
from pricing.tests.factories import PlanFactory, PricingZoneFactory

pytestmark = pytest.mark.django_db


def _rejected(make) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_negative_plan_price_is_rejected():
    plan = PlanFactory()
    _rejected(lambda: Plan.objects.filter(pk=plan.pk).update(price_cents=-1))
    assert Plan.objects.get(pk=plan.pk).price_cents == 999


def test_unknown_billing_cycle_is_rejected():
    _rejected(lambda: PlanFactory(billing_cycle="weekly"))


def test_zone_outside_a_to_d_is_rejected():
    _rejected(lambda: PricingZoneFactory(iso_code="XX", zone="E"))
    assert not PricingZone.objects.filter(iso_code="XX").exists()


def test_negative_multiplier_is_rejected():
    _rejected(lambda: PricingZoneFactory(iso_code="XY", pricing_multiplier=Decimal("-0.01")))


def test_duplicate_iso_code_is_rejected():
    PricingZoneFactory(iso_code="IN")
    _rejected(
        lambda: PricingZone.objects.create(
            iso_code="IN", country="Again", zone="A", zone_name="Premium", pricing_multiplier=1
        )
    )
    assert PricingZone.objects.filter(iso_code="IN").count() == 1


def test_lower_case_iso_code_is_rejected():
    _rejected(lambda: PricingZoneFactory(iso_code="in"))


@pytest.mark.parametrize("amount", [0])
def test_payment_amount_must_be_positive(amount):
    _rejected(lambda: PaymentFactory(amount=amount))
    assert Payment.objects.count() == 0


def test_payment_unknown_status_is_rejected():
    _rejected(lambda: PaymentFactory(status="paid"))


def test_payment_lower_case_currency_is_rejected():
    _rejected(lambda: PaymentFactory(currency="usd"))


def test_refund_cannot_exceed_amount():
    payment = PaymentFactory(amount=500)
    _rejected(lambda: Payment.objects.filter(pk=payment.pk).update(refunded_amount=501))


def test_entitlement_unknown_status_is_rejected():
    _rejected(lambda: EntitlementFactory(status="paused"))


def test_plan_with_entitlements_cannot_be_deleted():
    entitlement = EntitlementFactory()
    with pytest.raises(ProtectedError):
        entitlement.plan.delete()
    # And below the ORM, the database refuses too.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM pricing_plan WHERE id = %s", [entitlement.plan_id])


def test_renaming_a_plan_id_cascades_to_its_entitlements():
    entitlement = EntitlementFactory()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("UPDATE pricing_plan SET id = 'renamed_plan' WHERE id = %s", [entitlement.plan_id])
    assert Entitlement.objects.get(pk=entitlement.pk).plan_id == "renamed_plan"
