"""REST: `POST/GET /api/v1/checkout/sessions/` and `POST /api/v1/payments/{id}/refund/`."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.errors import NotFound
from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.permissions import IsServiceOrStaff, principal_of
from jia_payments.core.api.validation import (
    CountryCodeField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UserIdField,
)
from payments.api import PaymentSerializer
from payments.checkout import checkout_country, checkout_data, checkout_session_create
from payments.refunds import payment_refund
from payments.selectors import checkout_session_get


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
    @extend_schema(request=CheckoutSessionCreateSerializer, responses={201: CheckoutSessionSerializer})
    @idempotent(atomic=False)  # it calls Stripe: no transaction may stay open
    def post(self, request):
        principal = principal_of(request)
        body = CheckoutSessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user_id = data.get("user_id") or principal.user_id
        if not principal.may_act_for(user_id):
            raise NotFound("No such user.")  # never reveal other users (API.md)
        if principal.is_privileged and not data.get("user_id"):
            raise serializers.ValidationError({"user_id": ["A service or staff must name the buyer."]})
        header = settings.CHECKOUT_COUNTRY_HEADER
        country, source = checkout_country(
            requested=data.get("country"),
            edge_value=request.headers.get(header) if header else None,
            trust_edge=not principal.is_privileged,
        )
        session = checkout_session_create(
            user_id=user_id,
            plan_id=data["plan_id"],
            success_url=data["success_url"],
            cancel_url=data["cancel_url"],
            country=country,
            country_source=source,
            family_id=data.get("family_id"),
        )
        return Response(
            CheckoutSessionSerializer(checkout_data(session)).data, status=status.HTTP_201_CREATED
        )


class CheckoutSessionDetailView(APIView):
    @extend_schema(responses={200: CheckoutSessionSerializer})
    def get(self, request, pk):
        session = checkout_session_get(pk)
        if session is None or not principal_of(request).may_act_for(session.user_id):
            raise NotFound("No such checkout session.")
        return Response(CheckoutSessionSerializer(checkout_data(session)).data)


class RefundSerializer(StrictSerializer):
    amount = StrictIntegerField(
        min_value=1, required=False, allow_null=True, help_text="Default: all that is left"
    )
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


class PaymentRefundView(APIView):
    permission_classes = [IsServiceOrStaff]

    @extend_schema(request=RefundSerializer, responses={200: PaymentSerializer})
    @idempotent(atomic=False)
    def post(self, request, payment_id):
        body = RefundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        payment = payment_refund(
            payment_id=payment_id,
            amount=body.validated_data.get("amount"),
            reason=body.validated_data["reason"],
            requested_by=str(principal_of(request)),
        )
        return Response(PaymentSerializer(payment).data)
