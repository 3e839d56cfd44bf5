"""The serializers rendered by a plan (DirectRepresentation) answer value for value and byte for byte
what DRF's fields answer."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from entitlements.models import Entitlement, FamilyMember
from entitlements.serializers import EntitlementSerializer, FamilyMemberSerializer
from entitlements.tests.factories import EntitlementFactory, FamilyFactory, FamilyMemberFactory
from payments.api.payments import PaymentSerializer
from payments.models import Payment
from payments.tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _drf(instance, serializer_class=EntitlementSerializer) -> dict:
    """What DRF's fields give (Serializer.to_representation, field by field)."""
    return serializers.Serializer.to_representation(serializer_class(), instance)


def _rows() -> list[Entitlement]:
    now = datetime.now(UTC)
    family = FamilyFactory()
    created = [
        EntitlementFactory(),
        EntitlementFactory(expires_at=now + timedelta(days=3, microseconds=7)),
        EntitlementFactory(expires_at=now.replace(microsecond=0) - timedelta(days=1), status="expired"),
        EntitlementFactory(family=family, subscription_id="sub_1", status=Entitlement.Status.ACTIVE),
        EntitlementFactory(
            usage_limits={"exports_per_day": 10, "nested": {"a": [1, 2.5, None, True]}},
            metadata={"note": "caf\u00e9 \u2028 \U0001f600", "n": 0},
        ),
        EntitlementFactory(status=Entitlement.Status.CANCELLED, metadata={}),
    ]
    return created + list(Entitlement.objects.order_by("granted_at"))


def test_same_values_as_drf_fields_for_created_and_read_rows():
    rows = _rows()
    for row in rows:
        assert EntitlementSerializer(row).data == _drf(row)
        assert list(EntitlementSerializer(row).data) == list(_drf(row))
    assert EntitlementSerializer(rows, many=True).data == [_drf(row) for row in rows]


def test_same_json_bytes_as_drf_fields():
    rows = _rows()
    ours = JSONRenderer().render(EntitlementSerializer(rows, many=True).data)
    assert ours == JSONRenderer().render([_drf(row) for row in rows])
    assert b"null" in ours and b"Z" in ours  # null family ids and expiries, UTC times were compared


def test_not_a_model_instance_goes_through_the_fields():
    row = EntitlementFactory()
    values = {field: getattr(row, field) for field in ("id", "user_id", "status", "granted_at")}
    values.update(feature_id=row.feature_id, plan_id=row.plan_id, family_id=None, subscription_id="")
    values.update(expires_at=None, usage_limits={}, metadata={}, created_at=row.created_at)
    values.update(updated_at=row.updated_at)
    assert EntitlementSerializer(values).data == _drf(row)


PLANNED = [EntitlementSerializer, FamilyMemberSerializer, PaymentSerializer]


@pytest.mark.parametrize("serializer_class", PLANNED)
def test_each_serializer_has_a_plan(serializer_class):
    assert serializer_class._representation_plan(serializer_class()) is not None


def test_family_members_and_payments_as_drf_renders_them():
    FamilyMemberFactory(role=FamilyMember.Role.OWNER)
    FamilyMemberFactory()
    PaymentFactory(metadata={"k": ["v", 1]}, description="caf\u00e9")
    PaymentFactory(status=Payment.Status.FAILED, failure_reason="card_declined", refunded_amount=0)
    for serializer_class, rows in (
        (FamilyMemberSerializer, list(FamilyMember.objects.all())),
        (PaymentSerializer, list(Payment.objects.all())),
    ):
        assert len(rows) == 2
        ours = serializer_class(rows, many=True).data
        drf = [_drf(row, serializer_class) for row in rows]
        assert ours == drf
        assert JSONRenderer().render(ours) == JSONRenderer().render(drf)


def test_a_field_it_does_not_know_makes_the_class_use_drf():
    class WithMethod(EntitlementSerializer):
        extra = serializers.SerializerMethodField()

        class Meta(EntitlementSerializer.Meta):
            fields = [*EntitlementSerializer.Meta.fields, "extra"]

        def get_extra(self, row):
            return row.user_id.upper()

    row = EntitlementFactory()
    assert WithMethod._representation_plan(WithMethod()) is None
    assert WithMethod(row).data == {**_drf(row), "extra": row.user_id.upper()}
