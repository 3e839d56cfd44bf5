"""REST: `/api/v1/payments/` (API.md "Payments"): list, create, one payment, its status moves.

Who may create a payment for whom, and whether Stripe is involved, is `services.payment_create`'s.
"""

import json
import re

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from jia_payments.core.api.errors import InvalidTransition
from jia_payments.core.api.idempotency import answer_rows, effect_id, idempotent
from jia_payments.core.api.openapi import problem_response
from jia_payments.core.api.permissions import IsServiceOrStaff
from jia_payments.core.api.renderers import json_response
from jia_payments.core.api.representation import DirectRepresentation
from jia_payments.core.api.validation import (
    CurrencyField,
    JSONObjectField,
    StrictCharField,
    StrictIntegerField,
    StrictQuery,
    StrictSerializer,
    is_currency_code,
)
from payments import selectors, services
from payments.models import MAX_AMOUNT, Payment
from payments.stripe.gateway import StripeUnavailable

API_METHODS = [
    Payment.Method.CREDIT_CARD,
    Payment.Method.DEBIT_CARD,
    Payment.Method.BANK_TRANSFER,
    Payment.Method.WALLET,
]
# Targets of POST .../status/: "pending" is one (a move back to it is the 409 invalid_transition
# the contract names, not an unknown value); "refunded" is not: a refund moves money, .../refund/.
API_STATUSES = [
    Payment.Status.PENDING,
    Payment.Status.COMPLETED,
    Payment.Status.FAILED,
    Payment.Status.CANCELLED,
]


def _max(field: str) -> int:
    return Payment._meta.get_field(field).max_length


class PaymentSerializer(DirectRepresentation, serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = list(services.PAYMENT_FIELDS)
        read_only_fields = fields


class PaymentCreateSerializer(StrictSerializer):
    amount = StrictIntegerField(min_value=1, max_value=MAX_AMOUNT, help_text="Minor units, e.g. 1999")
    currency = CurrencyField()
    payment_method = serializers.ChoiceField(choices=API_METHODS)
    customer_id = StrictCharField(max_length=_max("customer_id"))
    order_id = StrictCharField(max_length=_max("order_id"), required=False, allow_blank=True)
    description = StrictCharField(max_length=_max("description"), required=False, allow_blank=True)
    metadata = JSONObjectField(required=False)


class PaymentStatusSerializer(StrictSerializer):
    """`failure_reason` is required with `failed` and refused (or empty) with any other status:
    `services.payment_move_status` checks it, the schema says it (`schema_variants`)."""

    status = serializers.ChoiceField(choices=API_STATUSES)
    failure_reason = StrictCharField(
        max_length=_max("failure_reason"), required=False, allow_blank=True, help_text="Required for failed"
    )
    schema_variants = [
        {
            "properties": {
                "status": {"const": Payment.Status.FAILED.value},
                "failure_reason": {"minLength": 1},
            },
            "required": ["status", "failure_reason"],
        },
        {
            "properties": {
                "status": {"not": {"const": Payment.Status.FAILED.value}},
                "failure_reason": {"maxLength": 0},
            }
        },
    ]


class PaymentListQuery(StrictQuery):
    customer_id = StrictCharField(max_length=_max("customer_id"), required=False)
    status = serializers.ChoiceField(choices=Payment.Status.choices, required=False)


class PaymentListCreateView(GenericAPIView):
    serializer_class = PaymentSerializer
    session_permissions = {"POST": ["payments.add_payment"]}

    @extend_schema(
        parameters=[PaymentListQuery],
        responses=PaymentSerializer(many=True),
        summary="List payments, newest first (an end user sees only their own)",
    )
    def get(self, request):
        query = PaymentListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        payments = selectors.payment_list(principal=request.user, **query.validated_data)
        page = self.paginate_queryset(payments)
        return self.get_paginated_response(PaymentSerializer(page, many=True).data)

    @extend_schema(
        request=PaymentCreateSerializer,
        responses={
            201: PaymentSerializer,
            403: problem_response(
                services.PaymentForbidden,
                "An end user may only create payments for themself.",
                "An end user asked for another customer_id",
            ),
            503: problem_response(
                StripeUnavailable,
                "The payment provider is unavailable",
                "A card, debit card or wallet payment could not reach Stripe; nothing was created",
            ),
        },
        summary="Create a pending payment (an end user only for themself)",
        description=(
            "A `credit_card`, `debit_card` or `wallet` payment (STRIPE_PAYMENT_METHODS) is charged "
            "through a Stripe PaymentIntent: `external_payment_id` is its id and the answer adds its "
            "`client_secret`, for the client to confirm it with Stripe.js. The payment then completes "
            "or fails through Stripe's webhooks."
        ),
        examples=[
            OpenApiExample(
                "A card payment",
                request_only=True,
                value={
                    "amount": 1999,
                    "currency": "USD",
                    "payment_method": "credit_card",
                    "customer_id": "customer_123",
                    "order_id": "order_123",
                    "description": "Test payment",
                    "metadata": {"source": "ios"},
                },
            )
        ],
    )
    @idempotent(atomic=False)  # a card payment calls Stripe: no transaction may stay open
    def post(self, request):
        answer = CreatedAnswer(request, _created_response)
        created = services.payment_create(
            principal=request.user,
            payment_id=effect_id(request),
            written_with=answer.stored_rows,
            **_create_data(request.data),
        )
        return answer.for_payment(created)


class CreatedAnswer:
    """A create's answer (`render(request, NewPayment)`), rendered from the new payment just before
    it is written, so that the Idempotency-Key's stored answer is written by the same statement
    (REST and gRPC)."""

    def __init__(self, request, render):
        self.request, self.render = request, render
        self.rendered = None  # (the payment, its answer)

    def stored_rows(self, created: services.NewPayment) -> list:
        self.rendered = (created.payment, self.render(self.request, created))
        return answer_rows(self.request, self.rendered[1])

    def for_payment(self, created: services.NewPayment):
        if self.rendered is not None and self.rendered[0] is created.payment:
            return self.rendered[1]
        return self.render(self.request, created)  # the payment an earlier run made


def _created_response(request, created: services.NewPayment):
    body = PaymentSerializer(created.payment).data
    if created.client_secret is not None:
        body = {**body, "client_secret": created.client_secret}
    response = json_response(request, body)
    response.status_code = status.HTTP_201_CREATED
    return response


# A create is a hot path: a body that is plainly valid skips the serializer; any other goes
# through it, so that every error is exactly the serializer's.
_CREATE_FIELDS = frozenset(PaymentCreateSerializer._declared_fields)
_REQUIRED_FIELDS = frozenset(("amount", "currency", "payment_method", "customer_id"))
_METHODS = {method.value: method for method in API_METHODS}
_PLAIN_TEXT = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no NUL, no surrogate
_MAX_LENGTH = {field: _max(field) for field in ("customer_id", "order_id", "description")}
_PLAIN_METADATA_ENTRIES = 20
_PLAIN_METADATA_KEY_LENGTH = 100
_METADATA_MAX_BYTES = PaymentCreateSerializer._declared_fields["metadata"].max_bytes


def _create_data(data) -> dict:
    """PaymentCreateSerializer's validated data, without the serializer when the body is plainly valid."""
    if _is_plain_create(data):
        return {**data, "payment_method": _METHODS[data["payment_method"]]}
    serializer = PaymentCreateSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _is_plain_create(data) -> bool:
    return (
        type(data) is dict
        and _REQUIRED_FIELDS <= data.keys() <= _CREATE_FIELDS
        and type(data["amount"]) is int
        and 1 <= data["amount"] <= MAX_AMOUNT
        and type(data["currency"]) is str
        and is_currency_code(data["currency"])
        and type(data["payment_method"]) is str
        and data["payment_method"] in _METHODS
        and _is_plain_text(data["customer_id"], _MAX_LENGTH["customer_id"], min_length=1)
        and _is_plain_text(data.get("order_id", ""), _MAX_LENGTH["order_id"])
        and _is_plain_text(data.get("description", ""), _MAX_LENGTH["description"])
        and _is_plain_metadata(data.get("metadata", {}))
    )


def _is_plain_text(value, max_length: int, *, min_length: int = 0) -> bool:
    return (
        type(value) is str
        and min_length <= len(value) <= max_length
        and _PLAIN_TEXT.fullmatch(value) is not None
    )


def _is_plain_metadata(value) -> bool:
    """A flat object of plain text keys and plain text, whole number, boolean or null values."""
    return (
        type(value) is dict
        and len(value) <= _PLAIN_METADATA_ENTRIES
        and all(
            _is_plain_text(key, _PLAIN_METADATA_KEY_LENGTH)
            and (type(item) in (int, bool, type(None)) or (type(item) is str and _PLAIN_TEXT.fullmatch(item)))
            for key, item in value.items()
        )
        and len(json.dumps(value, separators=(",", ":"))) <= _METADATA_MAX_BYTES
    )


class PaymentDetailView(GenericAPIView):
    serializer_class = PaymentSerializer

    @extend_schema(summary="One payment (its owner, services and staff)")
    def get(self, request, payment_id):
        payment = selectors.payment_get(principal=request.user, payment_id=payment_id)
        return Response(PaymentSerializer(payment).data)


class PaymentStatusView(GenericAPIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"POST": ["payments.change_payment"]}
    serializer_class = PaymentSerializer

    @extend_schema(
        request=PaymentStatusSerializer,
        responses={
            200: PaymentSerializer,
            409: problem_response(
                InvalidTransition,
                "A completed payment cannot become failed.",
                "The state machine does not allow this move",
            ),
        },
        examples=[
            OpenApiExample("Complete", request_only=True, value={"status": "completed"}),
            OpenApiExample(
                "Fail", request_only=True, value={"status": "failed", "failure_reason": "card_declined"}
            ),
        ],
        summary="Move a payment along pending -> completed | failed | cancelled",
        description="A move the state machine does not allow is 409 `invalid_transition`. "
        "Refunds go through the refund endpoint.",
    )
    def post(self, request, payment_id):
        data = PaymentStatusSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Only services and staff get here, and they see every payment: the service's 404 suffices.
        payment = services.payment_move_status(payment_id=payment_id, **data.validated_data)
        return Response(PaymentSerializer(payment).data)
