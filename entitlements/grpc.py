"""gRPC `entitlement.v1.EntitlementService`: the REST entitlement calls (the original service's
"implemented but not exposed" methods), from the same services and selectors, validated and
rendered by the same serializers. The check is the hot path: its answer is built field by field."""

from rest_framework import status
from rest_framework.response import Response

from entitlements import selectors, services
from entitlements.api import MAX_BATCH, BatchCheckIn, CheckQuery, EntitlementIn, ExpiryIn, ListQuery, StatusIn
from entitlements.serializers import EntitlementSerializer
from jia_payments.core.api.permissions import IsServiceOrStaff
from jia_payments.core.api.throttling import WriteRateThrottle
from jia_payments.core.api.validation import is_plain_feature_code, is_plain_user_id
from jia_payments.core.grpc.calls import rpc
from jia_payments.core.grpc.idempotency import idempotently
from jia_payments.core.grpc.messages import page, to_dict, to_message, to_messages, uuid_or_not_found
from jia_payments.core.grpc.server import Service
from jia_payments.protos.entitlement.v1 import entitlement_pb2 as pb
from jia_payments.protos.entitlement.v1 import entitlement_pb2_grpc


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _fill_check(message, answer: dict):
    """A check's answer (selectors.entitlement_check) into a CheckEntitlementResponse or an
    EntitlementCheck: the fields of REST's answer."""
    message.user_id = answer["user_id"]
    message.feature_code = answer["feature_code"]
    message.has_access = answer["has_access"]
    message.reason = answer["reason"]
    if answer["expires_at"] is not None:
        message.expires_at.FromDatetime(answer["expires_at"])
    message.usage_limits.SetInParent()
    message.usage_limits.update(answer["usage_limits"])
    source = answer["source"]
    if source is not None:
        message.source.entitlement_id = str(source["entitlement_id"])
        message.source.plan_id = source["plan_id"]
        if source["family_id"] is not None:
            message.source.family_id = str(source["family_id"])
    return message


def _entitlement(entitlement) -> pb.Entitlement:
    return to_message(pb.Entitlement, EntitlementSerializer(entitlement).data)


def _caller_subject(call, user_id: str | None) -> str:
    return selectors.entitlement_subject(
        user_id=user_id or None, caller_id=call.user.user_id, privileged=call.user.is_privileged
    )


class EntitlementServicer(entitlement_pb2_grpc.EntitlementServiceServicer):
    @rpc()
    def CheckEntitlement(self, request, call):
        code, user_id = request.feature_code, request.user_id
        # Plainly valid input skips the serializer (as REST's check); anything else gets its errors.
        if not (is_plain_feature_code(code) and (not user_id or is_plain_user_id(user_id))):
            _valid(CheckQuery, to_dict(request))
        subject = _caller_subject(call, user_id)
        answer = selectors.entitlement_check(user_id=subject, feature_code=code)
        return _fill_check(pb.CheckEntitlementResponse(), answer)

    @rpc(skip_throttles=(WriteRateThrottle,))
    def BatchCheckEntitlements(self, request, call):
        codes = list(request.feature_codes)
        plain = 1 <= len(codes) <= MAX_BATCH and all(is_plain_feature_code(code) for code in codes)
        if not plain or (request.user_id and not is_plain_user_id(request.user_id)):
            _valid(BatchCheckIn, {**to_dict(request), "feature_codes": codes})
        subject = _caller_subject(call, request.user_id)
        answers = selectors.entitlement_check_many(user_id=subject, feature_codes=list(dict.fromkeys(codes)))
        response = pb.BatchCheckEntitlementsResponse(user_id=subject)
        for code, answer in answers.items():
            _fill_check(response.results[code], answer)
        return response

    @rpc()
    def ListUserEntitlements(self, request, call):
        query = _valid(ListQuery, to_dict(request, exclude=("limit", "offset")))
        subject = _caller_subject(call, query.get("user_id"))
        rows, total = page(
            selectors.entitlement_list(user_id=subject, status=query.get("status")),
            limit=request.limit,
            offset=request.offset,
        )
        entitlements = to_messages(pb.Entitlement, EntitlementSerializer.many_data(rows))
        return pb.ListUserEntitlementsResponse(entitlements=entitlements, total=total)

    @rpc(permission=IsServiceOrStaff, write=True)
    def CreateEntitlement(self, request, call):
        data = to_dict(request, exclude=("idempotency_key",))

        def create() -> Response:
            entitlement = services.entitlement_create(**_valid(EntitlementIn, data))
            return Response(EntitlementSerializer(entitlement).data, status=status.HTTP_201_CREATED)

        answer = idempotently(call, data=data, key=request.idempotency_key, handler=create)
        return pb.CreateEntitlementResponse(entitlement=to_message(pb.Entitlement, answer.data))

    @rpc(permission=IsServiceOrStaff, write=True)
    def UpdateEntitlementStatus(self, request, call):
        entitlement_id = uuid_or_not_found(request.id)
        body = _valid(StatusIn, to_dict(request, exclude=("id",)))
        entitlement = services.entitlement_set_status(
            entitlement_id=entitlement_id, status=body["status"], reason=body.get("reason", "")
        )
        return pb.UpdateEntitlementStatusResponse(entitlement=_entitlement(entitlement))

    @rpc(permission=IsServiceOrStaff, write=True)
    def UpdateEntitlementExpiry(self, request, call):
        entitlement_id = uuid_or_not_found(request.id)
        body = _valid(ExpiryIn, {"expires_at": None, **to_dict(request, exclude=("id",))})
        entitlement = services.entitlement_set_expiry(
            entitlement_id=entitlement_id, expires_at=body["expires_at"], reason=body.get("reason", "")
        )
        return pb.UpdateEntitlementExpiryResponse(entitlement=_entitlement(entitlement))


SERVICES = [
    Service(
        name=pb.DESCRIPTOR.services_by_name["EntitlementService"].full_name,
        servicer=EntitlementServicer(),
        add=entitlement_pb2_grpc.add_EntitlementServiceServicer_to_server,
    )
]
