"""How an entitlement looks to API clients and in `entitlement.*` events (API.md)."""

from rest_framework import serializers

from entitlements.models import Entitlement, FamilyMember
from entitlements.selectors import EntitlementRow
from jia_payments.core.api.representation import DirectRepresentation


class EntitlementSerializer(DirectRepresentation, serializers.ModelSerializer):
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
        row_types = (EntitlementRow,)


class FamilyMemberSerializer(DirectRepresentation, serializers.ModelSerializer):
    class Meta:
        model = FamilyMember
        fields = ["user_id", "role", "added_at"]
        read_only_fields = fields


def entitlement_data(entitlement: Entitlement) -> dict:
    return dict(EntitlementSerializer(entitlement).data)
