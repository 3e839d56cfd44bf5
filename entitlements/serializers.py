"""How an entitlement looks to API clients and in `entitlement.*` events (API.md)."""

from rest_framework import serializers

from entitlements.models import Entitlement, FamilyMember
from jia_payments.core.api.timestamps import iso_utc

# How EntitlementSerializer's fields render, field by field (its `to_representation`).
_SOURCES = {"feature_code": "feature_id"}
_TIMES = frozenset({"granted_at", "expires_at", "created_at", "updated_at"})
_AS_IS = frozenset({"usage_limits", "metadata"})  # JSON values


class EntitlementSerializer(serializers.ModelSerializer):
    family_id = serializers.UUIDField(read_only=True, allow_null=True)
    feature_code = serializers.CharField(source="feature_id", read_only=True)
    plan_id = serializers.CharField(read_only=True)

    class Meta:
        model = Entitlement
        fields = [
            "id",
            "user_id",
            "family_id",
            "feature_code",
            "plan_id",
            "subscription_id",
            "status",
            "granted_at",
            "expires_at",
            "usage_limits",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        """What the fields above give, built directly: DRF building the fields and asking each one
        for its value was most of a list page's CPU. (Tests compare it with DRF's own output.)"""
        if type(instance) is not Entitlement:
            return super().to_representation(instance)
        data = {}
        for name in self.Meta.fields:
            value = getattr(instance, _SOURCES.get(name, name))
            if value is None or name in _AS_IS:
                data[name] = value
            elif name in _TIMES:
                data[name] = iso_utc(value)
            else:
                data[name] = str(value)
        return data


class FamilyMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = FamilyMember
        fields = ["user_id", "role", "added_at"]
        read_only_fields = fields


def entitlement_data(entitlement: Entitlement) -> dict:
    return dict(EntitlementSerializer(entitlement).data)
