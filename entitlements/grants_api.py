"""REST: plan grants without a checkout (API.md "Plan grants"): `POST /api/v1/entitlements/grants/`
and `DELETE /api/v1/entitlements/grants/{grant_id}/`, for services and staff. Input only; the
grant is `entitlements.services.plan_grant_create`, the service a purchase grants through."""

import uuid

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from entitlements import services
from entitlements.api import DOES_NOT_FIT, StrictUUIDField, UserIdField
from entitlements.errors import InvalidEntitlementInput
from entitlements.serializers import EntitlementSerializer
from jia_payments.core.api.errors import NotFound
from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.permissions import IsServiceOrStaff
from jia_payments.core.api.validation import StrictCharField, StrictSerializer

REASON_HELP = "Why (a promotion, a support gesture, a migration): kept in the audit trail"


class GrantIn(StrictSerializer):
    user_id = UserIdField()
    plan_id = StrictCharField(max_length=64)
    family_id = StrictUUIDField(
        required=False, allow_null=True, help_text="A family plan: an existing family of the user's"
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Default: the plan's period from now; null = lifetime"
    )
    reason = StrictCharField(max_length=500, help_text=REASON_HELP)

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():  # the schema cannot say "after now": 422
            raise InvalidEntitlementInput(
                "expires_at is in the past.",
                errors={"expires_at": ["Must be in the future (or null for lifetime)."]},
            )
        return value


class GrantOut(serializers.Serializer):
    grant_id = serializers.UUIDField()
    user_id = serializers.CharField()
    plan_id = serializers.CharField()
    family_id = serializers.UUIDField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    entitlements = EntitlementSerializer(many=True)


class RevokeIn(StrictSerializer):
    reason = StrictCharField(
        max_length=500, required=False, allow_blank=True, default="", help_text=REASON_HELP
    )


class PlanGrantListView(APIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"POST": ["entitlements.add_entitlement"]}

    @extend_schema(
        operation_id="entitlements_grants_create",
        request=GrantIn,
        responses={201: GrantOut, 422: DOES_NOT_FIT},
        summary="Grant every feature of a plan without a checkout (services, staff)",
    )
    @idempotent
    def post(self, request):
        body = GrantIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if "expires_at" not in data:
            data["expires_at"] = services.DEFAULT_EXPIRY
        grant_id, rows = services.plan_grant_create(**data)
        answer = {
            "grant_id": grant_id,
            "user_id": data["user_id"],
            "plan_id": data["plan_id"],
            "family_id": rows[0].family_id if rows else data.get("family_id"),
            "expires_at": rows[0].expires_at if rows else None,
            "entitlements": rows,
        }
        return Response(GrantOut(answer).data, status=status.HTTP_201_CREATED)


class PlanGrantView(APIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"DELETE": ["entitlements.change_entitlement"]}

    @extend_schema(
        operation_id="entitlements_grants_revoke",
        parameters=[OpenApiParameter("reason", str, description=REASON_HELP)],
        request=RevokeIn,
        responses={204: None},
        summary="Revoke every entitlement of a plan grant (services, staff)",
        description='The reason is the `reason` query parameter or a JSON body `{"reason": "..."}`.',
    )
    def delete(self, request, grant_id: str):
        try:
            grant = uuid.UUID(grant_id)
        except ValueError as error:
            raise NotFound("No such grant.") from error
        body = RevokeIn(
            data=request.data if request.data else {"reason": request.query_params.get("reason", "")}
        )
        body.is_valid(raise_exception=True)
        services.plan_grant_revoke(grant_id=grant, reason=body.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)
