"""REST's Idempotency-Key for gRPC creates: the request's `idempotency_key` field, or the
`idempotency-key` metadata header, in the same store with the same semantics
(`core.api.idempotency.run_idempotently`). The fingerprint is the full method name and the request
message without its key; a reused key with another request is ALREADY_EXISTS. `effect_id(call)`:
the id a create makes its row under, as for REST."""

from rest_framework.response import Response

from jia_payments.core.api.idempotency import effect_id, run_idempotently
from jia_payments.core.grpc.calls import CallRequest

__all__ = ["effect_id", "idempotently"]

_META_NAME = "HTTP_IDEMPOTENCY_KEY"


def idempotently(call: CallRequest, *, data: dict, key: str, handler, atomic: bool = True) -> Response:
    """`handler()` (answering a DRF Response) once per key; a repeat answers the stored Response."""
    if key:
        call.META[_META_NAME] = key
    call.data = data
    return run_idempotently(call, handler, atomic=atomic)
