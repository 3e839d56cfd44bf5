"""REST: `/api/v1/subscriptions/` (list, one, change, cancel, resume) and
`POST /api/v1/billing-portal/sessions/`. Input and who may ask; the rules are in
payments.subscriptions."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.errors import InvalidFields, InvalidTransition, NotFound
from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import principal_of
from jia_payments.core.api.validation import StrictCharField, StrictQuery, StrictSerializer, WebUrlField
from payments import selectors
from payments.subscriptions import (
    PRORATIONS,
    billing_portal_session_create,
    subscription_cancel,
    subscription_change_plan,
    subscription_data,
    subscription_resume,
)


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.CharField()
    family_id = serializers.UUIDField(allow_null=True)
    plan_id = serializers.CharField()
    status = serializers.CharField()
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    country = serializers.CharField(allow_blank=True)
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    stripe_subscription_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def subscription_render(subscription) -> dict:
    return SubscriptionSerializer(subscription_data(subscription)).data


class SubscriptionListQuery(StrictQuery):
    user_id = StrictCharField(max_length=255, required=False)


class ChangeSerializer(StrictSerializer):
    plan_id = StrictCharField(max_length=64)
    proration = serializers.ChoiceField(choices=PRORATIONS, default="create_prorations")


class CancelSerializer(StrictSerializer):
    at_period_end = serializers.BooleanField(default=True)
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


class PortalSerializer(StrictSerializer):
    return_url = WebUrlField(max_length=2000)
    user_id = StrictCharField(max_length=255, required=False, help_text="Services: the customer")


class PortalAnswer(serializers.Serializer):
    url = serializers.URLField()


NOT_LIVE = problem_response(InvalidTransition, "Subscription ... is canceled.", "The subscription has ended")


class SubscriptionListView(GenericAPIView):
    serializer_class = SubscriptionSerializer

    @extend_schema(
        operation_id="subscriptions_list",
        parameters=[SubscriptionListQuery],
        responses=SubscriptionSerializer(many=True),
        summary="Subscriptions, newest first (an end user sees only their own)",
    )
    def get(self, request):
        query = SubscriptionListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        subscriptions = selectors.subscription_list(principal=principal_of(request), **query.validated_data)
        page = self.paginate_queryset(subscriptions)
        return self.get_paginated_response([subscription_render(s) for s in page])


class SubscriptionDetailView(APIView):
    @extend_schema(
        operation_id="subscriptions_retrieve",
        responses={200: SubscriptionSerializer},
        summary="One subscription",
    )
    def get(self, request, subscription_id):
        subscription = selectors.subscription_get(
            principal=principal_of(request), subscription_id=subscription_id
        )
        return Response(subscription_render(subscription))


class SubscriptionChangeView(APIView):
    session_permissions = {"POST": ["payments.change_subscription"]}

    @extend_schema(
        operation_id="subscriptions_change",
        request=ChangeSerializer,
        responses={200: SubscriptionSerializer, 409: NOT_LIVE},
        summary="Change plan (the new plan's zone price for the buyer's country)",
        description="Access switches to the new plan's features when Stripe confirms the change.",
    )
    @idempotent(atomic=False)  # it calls Stripe: no transaction may stay open
    def post(self, request, subscription_id):
        selectors.subscription_get(principal=principal_of(request), subscription_id=subscription_id)
        body = ChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subscription = subscription_change_plan(subscription_id=subscription_id, **body.validated_data)
        return Response(subscription_render(subscription))


class SubscriptionCancelView(APIView):
    session_permissions = {"POST": ["payments.change_subscription"]}

    @extend_schema(
        operation_id="subscriptions_cancel",
        request=CancelSerializer,
        responses={200: SubscriptionSerializer, 409: NOT_LIVE},
        summary="Cancel at the period's end (default) or now",
        description="At the period's end: access lasts until then. Now: access ends now; nothing "
        "is refunded (staff refund the payment separately).",
    )
    @idempotent(atomic=False)
    def post(self, request, subscription_id):
        selectors.subscription_get(principal=principal_of(request), subscription_id=subscription_id)
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        subscription = subscription_cancel(subscription_id=subscription_id, **body.validated_data)
        return Response(subscription_render(subscription))


class SubscriptionResumeView(APIView):
    session_permissions = {"POST": ["payments.change_subscription"]}

    @extend_schema(
        operation_id="subscriptions_resume",
        request=None,
        responses={200: SubscriptionSerializer, 409: NOT_LIVE},
        summary="Undo a cancel at the period's end",
    )
    @idempotent(atomic=False)
    def post(self, request, subscription_id):
        selectors.subscription_get(principal=principal_of(request), subscription_id=subscription_id)
        return Response(subscription_render(subscription_resume(subscription_id=subscription_id)))


class BillingPortalSessionView(APIView):
    session_permissions = {"POST": ["payments.change_subscription"]}

    @extend_schema(
        operation_id="billing_portal_sessions_create",
        request=PortalSerializer,
        responses={
            201: PortalAnswer,
            404: problem_response(
                NotFound,
                "This user has no Stripe customer yet (no subscription).",
                "The user has no Stripe customer, or (an end user) another user was named",
            ),
        },
        summary="A Stripe Billing Portal session for the caller's Stripe customer",
    )
    @idempotent(atomic=False)
    def post(self, request):
        principal = principal_of(request)
        body = PortalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user_id = body.validated_data.get("user_id") or principal.user_id
        if not principal.may_act_for(user_id):
            raise NotFound("No such user.")
        if principal.is_privileged and not body.validated_data.get("user_id"):
            raise InvalidFields(
                "A service or staff must name the customer.",
                errors={"user_id": ["A service or staff must name the customer."]},
            )
        url = billing_portal_session_create(user_id=user_id, return_url=body.validated_data["return_url"])
        return Response({"url": url}, status=201)
