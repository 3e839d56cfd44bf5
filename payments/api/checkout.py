"""REST: `POST /api/v1/checkout/sessions/` and `GET /api/v1/checkout/sessions/{id}/`."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import principal_of
from jia_payments.core.api.validation import (
    CountryCodeField,
    StrictCharField,
    StrictSerializer,
    UserIdField,
)
from payments.checkout import checkout_data, checkout_session_create
from payments.selectors import checkout_session_get
from payments.subscriptions import AlreadySubscribed


class CheckoutSessionCreateSerializer(StrictSerializer):
    plan_id = StrictCharField(max_length=64)
    success_url = serializers.URLField(max_length=2000)
    cancel_url = serializers.URLField(max_length=2000)
    country = CountryCodeField(required=False, help_text="ISO 3166-1 alpha-2; see how it is used in the docs")
    family_id = serializers.UUIDField(required=False, allow_null=True)
    user_id = UserIdField(required=False, help_text="Services and staff: the buyer")


class CheckoutSessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField(allow_null=True)
    stripe_session_id = serializers.CharField(allow_null=True)
    plan_id = serializers.CharField()
    user_id = serializers.CharField()
    family_id = serializers.UUIDField(allow_null=True)
    country = serializers.CharField(allow_null=True)
    country_source = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()
    zone = serializers.CharField(allow_null=True)
    multiplier = serializers.CharField()
    status = serializers.CharField()
    payment_id = serializers.UUIDField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class CheckoutSessionListView(APIView):
    session_permissions = {"POST": ["payments.add_checkoutsession"]}

    @extend_schema(
        request=CheckoutSessionCreateSerializer,
        responses={
            201: CheckoutSessionSerializer,
            409: problem_response(
                AlreadySubscribed,
                "user_1 already has subscription 5f0c... (premium_monthly, active): change its plan with "
                "POST /api/v1/subscriptions/5f0c.../change/ instead.",
                "A recurring plan while the buyer has a live subscription",
            ),
        },
    )
    @idempotent(atomic=False)  # it calls Stripe: no transaction may stay open
    def post(self, request):
        body = CheckoutSessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        header = settings.CHECKOUT_COUNTRY_HEADER
        session = checkout_session_create(
            principal=principal_of(request),
            edge_country=request.headers.get(header) if header else None,
            **body.validated_data,
        )
        return Response(
            CheckoutSessionSerializer(checkout_data(session)).data, status=status.HTTP_201_CREATED
        )


class CheckoutSessionDetailView(APIView):
    @extend_schema(responses={200: CheckoutSessionSerializer})
    def get(self, request, pk):
        session = checkout_session_get(principal=principal_of(request), checkout_session_id=pk)
        return Response(CheckoutSessionSerializer(checkout_data(session)).data)
