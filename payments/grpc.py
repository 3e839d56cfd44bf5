"""gRPC `payment.v1.PaymentService`, the original service's contract: the REST payment calls' rules
from the same services and selectors, validated and rendered by the same serializers."""

from rest_framework import exceptions, status
from rest_framework.response import Response

from jia_payments.core.api.permissions import IsServiceOrStaff
from jia_payments.core.grpc.calls import rpc
from jia_payments.core.grpc.idempotency import effect_id, idempotently
from jia_payments.core.grpc.messages import page, to_dict, to_message, to_messages, uuid_or_not_found
from jia_payments.core.grpc.server import Service
from jia_payments.protos.payment.v1 import payment_pb2 as pb
from jia_payments.protos.payment.v1 import payment_pb2_grpc
from payments import selectors, services
from payments.api.payments import (
    CreatedAnswer,
    PaymentCreateSerializer,
    PaymentListQuery,
    PaymentSerializer,
    PaymentStatusSerializer,
)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _page_of(payments, request) -> dict:
    rows, total = page(payments, limit=request.limit, offset=request.offset)
    return {"payments": to_messages(pb.Payment, PaymentSerializer(rows, many=True).data), "total": total}


def _created_response(call, created: services.NewPayment) -> Response:
    return Response(PaymentSerializer(created.payment).data, status=status.HTTP_201_CREATED)


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    @rpc(write=True)
    def CreatePayment(self, request, call):
        # proto3 sends an amount of 0 as no amount at all: validated as the 0 it was, as REST validates it.
        data = {"amount": request.amount, **to_dict(request, exclude=("idempotency_key",))}

        def create() -> Response:
            answer = CreatedAnswer(call, _created_response)
            created = services.payment_create(
                principal=call.user,
                payment_id=effect_id(call),
                written_with=answer.stored_rows,
                **_valid(PaymentCreateSerializer, data),
            )
            return answer.for_payment(created)

        # A card payment calls Stripe: no transaction may stay open (as the REST create).
        answer = idempotently(call, data=data, key=request.idempotency_key, handler=create, atomic=False)
        return pb.CreatePaymentResponse(payment=to_message(pb.Payment, answer.data))

    @rpc()
    def GetPayment(self, request, call):
        payment = selectors.payment_get(principal=call.user, payment_id=uuid_or_not_found(request.id))
        return pb.GetPaymentResponse(payment=to_message(pb.Payment, PaymentSerializer(payment).data))

    @rpc(permission=IsServiceOrStaff, write=True)
    def UpdatePaymentStatus(self, request, call):
        payment_id = uuid_or_not_found(request.id)
        move = _valid(PaymentStatusSerializer, to_dict(request, exclude=("id",)))
        payment = services.payment_move_status(payment_id=payment_id, **move)
        return pb.UpdatePaymentStatusResponse(
            success=True, payment=to_message(pb.Payment, PaymentSerializer(payment).data)
        )

    @rpc()
    def GetPaymentsByCustomer(self, request, call):
        if not request.customer_id:
            raise exceptions.ValidationError({"customer_id": ["This field is required."]})
        query = _valid(PaymentListQuery, {"customer_id": request.customer_id})
        payments = selectors.payment_list(principal=call.user, **query)
        return pb.GetPaymentsByCustomerResponse(**_page_of(payments, request))

    @rpc()
    def ListPayments(self, request, call):
        query = _valid(PaymentListQuery, to_dict(request, exclude=("limit", "offset")))
        payments = selectors.payment_list(principal=call.user, **query)
        return pb.ListPaymentsResponse(**_page_of(payments, request))


SERVICES = [
    Service(
        name=pb.DESCRIPTOR.services_by_name["PaymentService"].full_name,
        servicer=PaymentServicer(),
        add=payment_pb2_grpc.add_PaymentServiceServicer_to_server,
    )
]
