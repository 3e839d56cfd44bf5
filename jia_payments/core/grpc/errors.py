"""Every exception a servicer raises, as a gRPC status: rendered by the REST problem-details code
(`core.errors.problem_for`, so the message and the stable `code` are REST's), then mapped.

| problem (HTTP status, code)                  | gRPC status         |
|----------------------------------------------|---------------------|
| 400 (validation), 413, 422 `invalid`         | INVALID_ARGUMENT, field errors in `google.rpc.BadRequest` |
| 401                                          | UNAUTHENTICATED     |
| 403                                          | PERMISSION_DENIED   |
| 404                                          | NOT_FOUND           |
| 409 `invalid_transition`, `plan_full`, ...   | FAILED_PRECONDITION |
| 409 `*_exists`, 422 `idempotency_key_reused` | ALREADY_EXISTS      |
| 409 `idempotency_key_in_progress`            | ABORTED (retry)     |
| 422 (other)                                  | FAILED_PRECONDITION |
| 429                                          | RESOURCE_EXHAUSTED, `google.rpc.RetryInfo` |
| 502, 503, 504 (Stripe or a dependency down)  | UNAVAILABLE         |
| the database unreachable (OperationalError)  | UNAVAILABLE (logged) |
| anything else                                | INTERNAL, no trace (logged) |

Every status carries `google.rpc.ErrorInfo` with `reason` = the problem's `code` (REST's stable
machine-readable code) and domain `jia.app`.
"""

import logging

import grpc
from django.db import InterfaceError, OperationalError
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from jia_payments.core.api.errors import ServiceUnavailable, problem_for

DOMAIN = "jia.app"
logger = logging.getLogger(__name__)

_BY_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}
_BY_CODE = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,  # 422 too: fields that do not fit the data or caller
    "idempotency_key_reused": grpc.StatusCode.ALREADY_EXISTS,
    "idempotency_key_in_progress": grpc.StatusCode.ABORTED,
}


def grpc_code(http_status: int, code: str) -> grpc.StatusCode:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if http_status == 409 and code.endswith("_exists"):
        return grpc.StatusCode.ALREADY_EXISTS
    return _BY_STATUS.get(http_status, grpc.StatusCode.INTERNAL)


def _packed(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status of an exception (a problem REST would answer)."""
    if isinstance(exc, OperationalError | InterfaceError):
        # A client can retry this one: the database did not answer.
        logger.error("database unavailable during a gRPC call", exc_info=exc)
        exc = ServiceUnavailable("A dependency is unavailable; try again later.")
    body, problem_headers = problem_for(exc)
    code = grpc_code(body["status"], body["code"])
    details = [_packed(error_details_pb2.ErrorInfo(reason=body["code"], domain=DOMAIN))]
    errors = body.get("errors") or {}
    if errors:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
            for field, messages in errors.items()
            for message in messages
        ]
        details.append(_packed(error_details_pb2.BadRequest(field_violations=violations)))
    retry_after = problem_headers.get("Retry-After")
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after)))
        details.append(_packed(retry))
    return status_pb2.Status(code=code.value[0], message=body["detail"], details=details)


def abort_with(context, exc: BaseException):
    """Ends the call with the exception's status (raises, as `context.abort` does)."""
    context.abort_with_status(rpc_status.to_status(status_for(exc)))
