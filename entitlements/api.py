"""REST endpoints of API.md "Entitlements" and "Families": input checks and permissions only;
the rules live in `entitlements.services` (writes) and `entitlements.selectors` (reads), the
family visibility policy included."""

import uuid

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from entitlements import selectors, services
from entitlements.errors import EntitlementExists, InvalidEntitlementInput, OwnerCannotLeave, PlanFull
from entitlements.models import Entitlement
from entitlements.serializers import EntitlementSerializer, FamilyMemberSerializer
from jia_payments.core.api.errors import InvalidTransition, NotFound
from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.lean import LeanDispatch
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import IsServiceOrStaff, principal_of
from jia_payments.core.api.renderers import json_response
from jia_payments.core.api.throttling import CountsRideOnFirstRead, WriteRateThrottle
from jia_payments.core.api.timestamps import iso_utc
from jia_payments.core.api.validation import (
    FeatureCodeField,
    JSONObjectField,
    StrictCharField,
    StrictQuery,
    StrictSerializer,
    UserIdField,
    is_plain_feature_code,
    is_plain_user_id,
)

MAX_BATCH = 100


# --- input ---------------------------------------------------------------------------------


class StrictUUIDField(serializers.UUIDField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class CheckQuery(StrictQuery):
    feature_code = FeatureCodeField()
    user_id = UserIdField(required=False, help_text="Required for service and staff callers")


class BatchCheckIn(StrictSerializer):
    user_id = UserIdField(required=False, help_text="Required for service and staff callers")
    feature_codes = serializers.ListField(child=FeatureCodeField(), min_length=1, max_length=MAX_BATCH)


class ListQuery(StrictQuery):
    user_id = UserIdField(required=False, help_text="Required for service and staff callers")
    status = serializers.ChoiceField(choices=Entitlement.Status.choices, required=False)


class EntitlementIn(StrictSerializer):
    user_id = UserIdField()
    feature_code = FeatureCodeField()
    plan_id = StrictCharField(max_length=64)
    family_id = StrictUUIDField(required=False, allow_null=True)
    subscription_id = StrictCharField(max_length=255, required=False, allow_blank=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="null = lifetime")
    usage_limits = JSONObjectField(required=False, help_text="Default: the plan's usage limits")
    metadata = JSONObjectField(required=False)
    reason = StrictCharField(
        max_length=500, required=False, allow_blank=True, help_text="Why it is granted (audit trail)"
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():  # the schema cannot say "after now": 422
            raise InvalidEntitlementInput(
                "expires_at is in the past.",
                errors={"expires_at": ["Must be in the future (or null for lifetime)."]},
            )
        return value


class StatusIn(StrictSerializer):
    status = serializers.ChoiceField(choices=Entitlement.Status.choices)
    reason = StrictCharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="Why (kept on the row and in the audit trail)",
    )


class ExpiryIn(StrictSerializer):
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null = lifetime")
    reason = StrictCharField(
        max_length=255, required=False, allow_blank=True, help_text="Why (kept in the audit trail)"
    )


class MemberIn(StrictSerializer):
    user_id = UserIdField()


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# The check is the hot path: input that is plainly valid skips the serializers (a third of a
# warm check's time); anything else goes through them, so every error is exactly theirs.
_BATCH_FIELDS = frozenset({"user_id", "feature_codes"})


def _check_query(params) -> dict:
    """CheckQuery's validated data, without the serializer when the query is plainly valid."""
    code, user_id = params.get("feature_code"), params.get("user_id")
    if is_plain_feature_code(code) and (user_id is None or is_plain_user_id(user_id)):
        return {"feature_code": code} if user_id is None else {"feature_code": code, "user_id": user_id}
    return _valid(CheckQuery, params)


def _batch_body(data) -> dict:
    """BatchCheckIn's validated data, without the serializer when the body is plainly valid."""
    if type(data) is dict and data.keys() <= _BATCH_FIELDS:
        codes = data.get("feature_codes")
        if (
            type(codes) is list
            and 1 <= len(codes) <= MAX_BATCH
            and all(is_plain_feature_code(code) for code in codes)
            and ("user_id" not in data or is_plain_user_id(data["user_id"]))
        ):
            return dict(data)
    return _valid(BatchCheckIn, data)


_STATUSES = frozenset(Entitlement.Status.values)


def _list_query(params) -> dict:
    """ListQuery's validated data, without the serializer when the query is plainly valid."""
    user_id, status = params.get("user_id"), params.get("status")
    if (user_id is None or is_plain_user_id(user_id)) and (status is None or status in _STATUSES):
        query = {"user_id": user_id, "status": status}
        return {name: value for name, value in query.items() if value is not None}
    return _valid(ListQuery, params)


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("No such resource.") from None


def _subject(request, user_id: str | None) -> str:
    principal = principal_of(request)
    return selectors.entitlement_subject(
        user_id=user_id, caller_id=principal.user_id, privileged=principal.is_privileged
    )


# --- output --------------------------------------------------------------------------------


def _rendered(answer: dict, texts: dict | None = None) -> dict:
    """The selector's answer as the API shows it, the timestamp as ISO text: `usage_limits` is stored
    JSON, every other value the check's own str, bool or None (`source`: a dict of them). `texts`:
    the timestamps' texts so far, for answers that share them (a plan's features expire together)."""
    expires_at = answer["expires_at"]
    if expires_at is None:
        return answer
    text = None if texts is None else texts.get(expires_at)
    if text is None:
        text = iso_utc(expires_at)
        if texts is not None:
            texts[expires_at] = text
    return {**answer, "expires_at": text}


class SourceOut(serializers.Serializer):
    entitlement_id = serializers.UUIDField()
    plan_id = serializers.CharField()
    family_id = serializers.UUIDField(allow_null=True)


class CheckOut(serializers.Serializer):
    user_id = serializers.CharField()
    feature_code = serializers.CharField()
    has_access = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=["active", "no_entitlement", "expired", "revoked"])
    expires_at = serializers.DateTimeField(allow_null=True)
    usage_limits = serializers.DictField()
    source = SourceOut(allow_null=True)


BATCH_OUT = inline_serializer(
    "BatchCheckOut", {"user_id": serializers.CharField(), "results": serializers.DictField(child=CheckOut())}
)
PLAN_FULL = problem_response(PlanFull, "Every seat is taken.")
EXISTS = problem_response(EntitlementExists, "Already granted.")
TRANSITION = problem_response(InvalidTransition, "An entitlement cannot move from cancelled to expired.")
OWNER_STAYS = problem_response(OwnerCannotLeave, "The owner holds the family plan.")
DOES_NOT_FIT = problem_response(
    InvalidEntitlementInput,
    "The request has invalid fields.",
    "Well-formed, but naming a plan, feature or family that does not fit, or no user_id from a "
    "service or staff",
)


# --- entitlements --------------------------------------------------------------------------


class EntitlementCheckView(CountsRideOnFirstRead, LeanDispatch, APIView):
    """The hot path: one Redis round trip (the rate limits' counts and the cache read), no SQL on a hit."""

    # A plainly valid token call without DRF's dispatch around it; the batch check's POST is a read.
    lean_methods = frozenset({"GET", "POST"})

    def get_throttles(self):
        # The batch check is a POST but a read: it does not spend the (strict) write budget, so
        # an app checking its screen's features stays within limits, and pays no extra round trips.
        return [
            throttle() for throttle in self.throttle_classes if not issubclass(throttle, WriteRateThrottle)
        ]

    @extend_schema(
        operation_id="entitlements_check",
        parameters=[CheckQuery],
        responses={200: CheckOut, 422: DOES_NOT_FIT},
    )
    def get(self, request):
        query = _check_query(request.query_params)
        user_id = _subject(request, query.get("user_id"))
        answer = _rendered(selectors.entitlement_check(user_id=user_id, feature_code=query["feature_code"]))
        return json_response(request, answer, built_of_json_types_but=[answer["usage_limits"]])

    @extend_schema(
        operation_id="entitlements_check_batch",
        request=BatchCheckIn,
        responses={200: BATCH_OUT, 422: DOES_NOT_FIT},
    )
    def post(self, request):
        body = _batch_body(request.data)
        user_id = _subject(request, body.get("user_id"))
        codes = list(dict.fromkeys(body["feature_codes"]))
        answers = selectors.entitlement_check_many(user_id=user_id, feature_codes=codes)
        texts: dict = {}
        results = {code: _rendered(answer, texts) for code, answer in answers.items()}
        return json_response(
            request,
            {"user_id": user_id, "results": results},
            built_of_json_types_but=[answer["usage_limits"] for answer in results.values()],
        )


class EntitlementListView(LeanDispatch, GenericAPIView):
    serializer_class = EntitlementSerializer
    session_permissions = {"POST": ["entitlements.add_entitlement"]}

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsServiceOrStaff()]
        return super().get_permissions()

    @extend_schema(
        operation_id="entitlements_list",
        parameters=[ListQuery],
        responses={200: EntitlementSerializer(many=True), 422: DOES_NOT_FIT},
    )
    def get(self, request):
        query = _list_query(request.query_params)
        user_id = _subject(request, query.get("user_id"))
        page = self.paginate_queryset(selectors.entitlement_list(user_id=user_id, status=query.get("status")))
        return self.get_paginated_response(EntitlementSerializer.many_data(page))

    @extend_schema(
        operation_id="entitlements_create",
        request=EntitlementIn,
        responses={201: EntitlementSerializer, 409: EXISTS, 422: DOES_NOT_FIT},
    )
    @idempotent
    def post(self, request):
        entitlement = services.entitlement_create(**_valid(EntitlementIn, request.data))
        return Response(EntitlementSerializer(entitlement).data, status=status.HTTP_201_CREATED)


class EntitlementStatusView(APIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"POST": ["entitlements.change_entitlement"]}

    @extend_schema(
        operation_id="entitlements_set_status",
        request=StatusIn,
        responses={200: EntitlementSerializer, 409: TRANSITION},
    )
    def post(self, request, entitlement_id: str):
        body = _valid(StatusIn, request.data)
        entitlement = services.entitlement_set_status(
            entitlement_id=_uuid_or_404(entitlement_id), status=body["status"], reason=body.get("reason", "")
        )
        return Response(EntitlementSerializer(entitlement).data)


class EntitlementExpiryView(APIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"POST": ["entitlements.change_entitlement"]}

    @extend_schema(
        operation_id="entitlements_set_expiry",
        request=ExpiryIn,
        responses={200: EntitlementSerializer, 409: EXISTS},
    )
    def post(self, request, entitlement_id: str):
        body = _valid(ExpiryIn, request.data)
        entitlement = services.entitlement_set_expiry(
            entitlement_id=_uuid_or_404(entitlement_id),
            expires_at=body["expires_at"],
            reason=body.get("reason", ""),
        )
        return Response(EntitlementSerializer(entitlement).data)


# --- families ------------------------------------------------------------------------------


def _family_for(request, family_id: str, *, manage: bool):
    principal = principal_of(request)
    return selectors.family_for_caller(
        family_id=_uuid_or_404(family_id),
        user_id=principal.user_id,
        privileged=principal.is_privileged,
        manage=manage,
    )


class FamilyMembersView(GenericAPIView):
    serializer_class = FamilyMemberSerializer
    session_permissions = {"POST": ["entitlements.change_family"]}

    @extend_schema(
        operation_id="families_members_list",
        responses={200: FamilyMemberSerializer(many=True)},
    )
    def get(self, request, family_id: str):
        family = _family_for(request, family_id, manage=False)
        page = self.paginate_queryset(selectors.family_members(family=family))
        return self.get_paginated_response(FamilyMemberSerializer(page, many=True).data)

    @extend_schema(
        operation_id="families_members_add",
        request=MemberIn,
        responses={201: FamilyMemberSerializer, 409: PLAN_FULL},
    )
    @idempotent
    def post(self, request, family_id: str):
        family = _family_for(request, family_id, manage=True)
        body = _valid(MemberIn, request.data)
        member = services.family_member_add(family_id=family.pk, user_id=body["user_id"])
        return Response(FamilyMemberSerializer(member).data, status=status.HTTP_201_CREATED)


class FamilyMemberView(APIView):
    session_permissions = {"DELETE": ["entitlements.change_family"]}

    @extend_schema(
        operation_id="families_members_remove",
        responses={204: None, 409: OWNER_STAYS},
    )
    def delete(self, request, family_id: str, user_id: str):
        family = _family_for(request, family_id, manage=True)
        services.family_member_remove(family_id=family.pk, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the benchmark's ceiling -----------------------------------------------------------------


class BenchConstantView(APIView):
    """Mounted only with BENCH_ENDPOINTS: the same framework and auth, a constant answer."""

    @extend_schema(exclude=True)
    def get(self, request):
        return Response({"ok": True})
