"""REST: `POST /api/v1/payments/{id}/refund/`, a full or partial refund through Stripe."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from jia_payments.core.api.idempotency import idempotent
from jia_payments.core.api.permissions import IsServiceOrStaff, principal_of
from jia_payments.core.api.validation import StrictCharField, StrictIntegerField, StrictSerializer
from payments.api.payments import PaymentSerializer
from payments.refunds import payment_refund


class RefundSerializer(StrictSerializer):
    amount = StrictIntegerField(
        min_value=1, required=False, allow_null=True, help_text="Default: all that is left"
    )
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


class PaymentRefundView(APIView):
    permission_classes = [IsServiceOrStaff]
    session_permissions = {"POST": ["payments.refund_payment"]}

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
