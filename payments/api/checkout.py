"""REST: `POST /api/v1/checkout/sessions/` and `GET /api/v1/checkout/sessions/{id}/`."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.errors import NotFound
from jia_payments.core.api.idempotency import effect_id, idempotent
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import principal_of
from jia_payments.core.api.validation import (
    CountryCodeField,
    StrictCharField,
    StrictSerializer,
    UserIdField,
    WebUrlField,
)
from payments.api.subscriptions import SubscriptionSerializer, subscription_render
from payments.checkout import checkout_data, checkout_or_change_plan
from payments.selectors import checkout_session_get
from payments.subscriptions import PRORATIONS, AlreadySubscribed


class CheckoutSessionCreateSerializer(StrictSerializer):
    plan_id = StrictCharField(max_length=64)
    success_url = WebUrlField(max_length=2000)
    cancel_url = WebUrlField(max_length=2000)
    country = CountryCodeField(required=False, help_text="ISO 3166-1 alpha-2; see how it is used in the docs")
    family_id = serializers.UUIDField(required=False, allow_null=True)
    user_id = UserIdField(required=False, help_text="Services and staff: the buyer")
    change_plan = serializers.BooleanField(
        default=False,
        help_text="A recurring plan while the buyer has a live subscription: change that "
        "subscription to this plan (200, the subscription) instead of 409 already_subscribed",
    )
    proration = serializers.ChoiceField(
        choices=PRORATIONS, default="create_prorations", help_text="With change_plan, as for /change/"
    )


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
        description=(
            "201 and a checkout session to pay. With `change_plan: true` while the buyer has a live "
            "subscription: 200 and that subscription, moved to `plan_id` as by "
            "`POST /api/v1/subscriptions/{id}/change/` (with `proration`; `Location` names it); no "
            "second subscription and no checkout. A recurring plan's new checkout replaces the "
            "buyer's open ones (they are expired)."
        ),
        responses={
            201: CheckoutSessionSerializer,
            200: SubscriptionSerializer,
            404: problem_response(
                NotFound, "No such plan.", "No such active plan, or (an end user) another user as the buyer"
            ),
            409: problem_response(
                AlreadySubscribed,
                "user_1 already has subscription 5f0c... (premium_monthly, active): ask for the checkout "
                "with change_plan=true, or POST /api/v1/subscriptions/5f0c.../change/.",
                "A recurring plan while the buyer has a live subscription, without change_plan "
                "(also `checkout_superseded`: a newer checkout of the buyer replaced this one while "
                "it was made)",
            ),
        },
    )
    @idempotent(atomic=False)  # it calls Stripe: no transaction may stay open
    def post(self, request):
        body = CheckoutSessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        header = settings.CHECKOUT_COUNTRY_HEADER
        session, changed = checkout_or_change_plan(
            principal=principal_of(request),
            edge_country=request.headers.get(header) if header else None,
            checkout_session_id=effect_id(request),
            **body.validated_data,
        )
        if changed is not None:
            return Response(
                subscription_render(changed), headers={"Location": f"/api/v1/subscriptions/{changed.pk}/"}
            )
        return Response(
            CheckoutSessionSerializer(checkout_data(session)).data, status=status.HTTP_201_CREATED
        )


class CheckoutSessionDetailView(APIView):
    @extend_schema(responses={200: CheckoutSessionSerializer})
    def get(self, request, pk):
        session = checkout_session_get(principal=principal_of(request), checkout_session_id=pk)
        return Response(CheckoutSessionSerializer(checkout_data(session)).data)
