"""REST API v1 for plans, regional prices and pricing zones (API.md "Plans and prices", "Pricing zones")."""

from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from jia_payments.core.api.errors import InvalidFields, NotFound
from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import IsStaff
from jia_payments.core.api.validation import (
    CountryCodeField,
    MultiplierField,
    StrictCharField,
    StrictQuery,
    StrictSerializer,
)
from pricing import selectors, services
from pricing.models import Plan, PricingZone
from pricing.zones import ZONES

MAX_BULK_ZONES = 500


def _max(model, field: str) -> int:
    return model._meta.get_field(field).max_length


class PlanSerializer(serializers.ModelSerializer):
    feature_codes = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "description",
            "feature_codes",
            "billing_cycle",
            "price_cents",
            "currency",
            "max_users",
            "usage_limits",
        ]
        read_only_fields = fields

    def get_feature_codes(self, plan: Plan) -> list[str]:
        return sorted(feature.code for feature in plan.features.all())  # prefetched


class PriceSerializer(serializers.Serializer):
    plan_id = serializers.CharField()
    country = serializers.CharField()
    zone = serializers.CharField(allow_null=True)
    zone_name = serializers.CharField(allow_null=True)
    multiplier = serializers.DecimalField(max_digits=5, decimal_places=2)
    base_price_cents = serializers.IntegerField()
    price_cents = serializers.IntegerField()
    currency = serializers.CharField()


class PricingZoneSerializer(serializers.ModelSerializer):
    class Meta:
        model = PricingZone
        fields = [
            "id",
            "country",
            "iso_code",
            "zone",
            "zone_name",
            "world_bank_classification",
            "gni_per_capita_threshold",
            "pricing_multiplier",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PricingZoneWriteSerializer(StrictSerializer):
    country = StrictCharField(max_length=_max(PricingZone, "country"))
    zone = serializers.ChoiceField(choices=PricingZone.Zone.choices)
    zone_name = StrictCharField(max_length=_max(PricingZone, "zone_name"))
    world_bank_classification = StrictCharField(
        max_length=_max(PricingZone, "world_bank_classification"), required=False, allow_blank=True
    )
    gni_per_capita_threshold = StrictCharField(
        max_length=_max(PricingZone, "gni_per_capita_threshold"), required=False, allow_blank=True
    )
    pricing_multiplier = MultiplierField(help_text='e.g. "0.70"')
    # Each zone has its one name (pricing.zones.zone_errors checks it)
    schema_variants = [
        {"properties": {"zone": {"const": spec.zone}, "zone_name": {"const": spec.zone_name}}}
        for spec in ZONES.values()
    ]


REASON_MAX = 500
REASON_HELP = "Why (kept in the audit trail)"


def _reason_field():
    return StrictCharField(
        max_length=REASON_MAX, required=False, allow_blank=True, default="", help_text=REASON_HELP
    )


class PricingZonePutSerializer(PricingZoneWriteSerializer):
    """The zone as GET shows it is a valid PUT body: `iso_code` may be sent and must be the URL's
    (in any case); `id`, `created_at` and `updated_at` are ignored."""

    echoed_fields = frozenset({"id", "created_at", "updated_at"})
    default_error_messages = {"other_zone": "Must be the URL's code ({url_code}) or left out."}
    iso_code = CountryCodeField(required=False)
    reason = _reason_field()

    def validate_iso_code(self, value: str) -> str:
        url_code = self.context["iso_code"].upper()
        if value != url_code:  # the schema cannot tie a body field to the path: 422
            message = self.error_messages["other_zone"].format(url_code=url_code)
            raise InvalidFields(message, errors={"iso_code": [message]})
        return value


class PricingZoneBulkItemSerializer(PricingZoneWriteSerializer):
    iso_code = CountryCodeField()


class PricingZoneBulkSerializer(StrictSerializer):
    """The bulk body as an object: one reason for the whole request. A bare list of zones (the
    original shape) is still accepted, without a reason."""

    zones = PricingZoneBulkItemSerializer(many=True, allow_empty=False, max_length=MAX_BULK_ZONES)
    reason = _reason_field()


class PricingZoneDeleteSerializer(StrictSerializer):
    reason = _reason_field()


BULK_RESULT = inline_serializer(
    "BulkUpsertResult", {"created": serializers.IntegerField(), "updated": serializers.IntegerField()}
)


class PlanListView(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = PlanSerializer

    @extend_schema(summary="Active plans (no token needed)", responses=PlanSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.active_plans())
        return self.get_paginated_response(PlanSerializer(page, many=True).data)


class PlanDetailView(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = PlanSerializer

    @extend_schema(summary="One active plan (no token needed)")
    def get(self, request, plan_id):
        return Response(PlanSerializer(selectors.active_plan(plan_id=plan_id)).data)


class PriceQuery(StrictQuery):
    country = CountryCodeField(help_text="ISO 3166-1 alpha-2 code; a country without a zone pays zone A")
    plan_id = StrictCharField(max_length=_max(Plan, "id"), required=False)


class PriceListView(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = PriceSerializer

    @extend_schema(
        parameters=[PriceQuery],
        responses={
            200: PriceSerializer(many=True),
            404: problem_response(NotFound, "No such plan.", "plan_id names no active plan"),
        },
        summary="Each active plan's price in a country (no token needed)",
        description="Price = base price x the country's zone multiplier, rounded half-up to the minor "
        "unit. A country without a pricing zone gets the zone-A price with `zone: null`.",
    )
    def get(self, request):
        query = PriceQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.plan_prices(**query.validated_data))
        return self.get_paginated_response(PriceSerializer(page, many=True).data)


class PricingZoneQuery(StrictQuery):
    zone = serializers.ChoiceField(choices=PricingZone.Zone.choices, required=False)
    country = StrictCharField(
        max_length=_max(PricingZone, "country"), required=False, help_text="Country name, any case"
    )
    iso_code = CountryCodeField(required=False)


class PricingZoneListView(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = PricingZoneSerializer

    @extend_schema(
        parameters=[PricingZoneQuery],
        responses=PricingZoneSerializer(many=True),
        summary="Pricing zones (no token needed)",
    )
    def get(self, request):
        query = PricingZoneQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.pricing_zones(**query.validated_data))
        return self.get_paginated_response(PricingZoneSerializer(page, many=True).data)


class PricingZoneDetailView(GenericAPIView):
    serializer_class = PricingZoneSerializer
    session_permissions = {
        "PUT": ["pricing.add_pricingzone", "pricing.change_pricingzone"],
        "DELETE": ["pricing.delete_pricingzone"],
    }

    def get_permissions(self):
        return [AllowAny()] if self.request.method in ("GET", "HEAD", "OPTIONS") else [IsStaff()]

    @extend_schema(summary="One country's pricing zone (code in any case; no token needed)")
    def get(self, request, iso_code):
        return Response(PricingZoneSerializer(selectors.pricing_zone_get(iso_code=iso_code)).data)

    @extend_schema(
        request=PricingZonePutSerializer,
        responses={
            200: PricingZoneSerializer,
            201: PricingZoneSerializer,
            422: problem_response(
                InvalidFields, "Must be the URL's code (IN) or left out.", "iso_code is another"
            ),
        },
        summary="Create (201) or update (200) a country's pricing zone (staff)",
        description="`reason` (optional) is kept in the audit trail of the change.",
    )
    def put(self, request, iso_code):
        data = PricingZonePutSerializer(data=request.data, context={"iso_code": iso_code})
        data.is_valid(raise_exception=True)
        values = {name: value for name, value in data.validated_data.items() if name != "iso_code"}
        zone, created = services.pricing_zone_upsert(iso_code=iso_code, **values)
        return Response(
            PricingZoneSerializer(zone).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("reason", str, description=f"{REASON_HELP}; at most {REASON_MAX} characters")
        ],
        request=PricingZoneDeleteSerializer,
        responses={204: None},
        summary="Delete a country's pricing zone (staff)",
        description="The reason (optional) is given as the `reason` query parameter or in a JSON body "
        '`{"reason": "..."}`; it is kept in the audit trail of the deletion.',
    )
    def delete(self, request, iso_code):
        body = request.data if request.data else {"reason": request.query_params.get("reason", "")}
        data = PricingZoneDeleteSerializer(data=body)
        data.is_valid(raise_exception=True)
        services.pricing_zone_delete(iso_code=iso_code, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PricingZoneBulkUpsertView(GenericAPIView):
    permission_classes = [IsStaff]
    session_permissions = {"POST": ["pricing.add_pricingzone", "pricing.change_pricingzone"]}
    serializer_class = PricingZoneBulkItemSerializer

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="PricingZoneBulkUpsertRequest",
            serializers=[
                PricingZoneBulkSerializer,
                PricingZoneBulkItemSerializer(many=True, allow_empty=False, max_length=MAX_BULK_ZONES),
            ],
            resource_type_field_name=None,
            many=False,
        ),
        responses={200: BULK_RESULT},
        summary="Create or update many pricing zones, all or nothing (staff)",
        description='Body: `{"zones": [...], "reason": "..."}` (the reason, optional, is kept in the '
        "audit trail of every zone the request changes), or a bare list of zones without a reason.",
    )
    @idempotent
    def post(self, request):
        if isinstance(request.data, list):
            data = PricingZoneBulkItemSerializer(
                data=request.data, many=True, allow_empty=False, max_length=MAX_BULK_ZONES
            )
            data.is_valid(raise_exception=True)
            zones, reason = data.validated_data, ""
        else:
            data = PricingZoneBulkSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            zones, reason = data.validated_data["zones"], data.validated_data["reason"]
        created, updated = services.pricing_zone_bulk_upsert(zones=zones, reason=reason)
        return Response({"created": created, "updated": updated})
