"""What every unary call gets, around its servicer method, in this order:

- a request id (`x-request-id` metadata when sane, else a new one), bound to the log context and
  returned in the initial metadata;
- Django's per-request hooks (`request_started` / `request_finished`: old database connections
  closed, as for an HTTP request), the call made known to the audit trail;
- every exception mapped to a gRPC status (`errors`), never UNKNOWN with a trace;
- one log line (`grpc_call`: request_id, user_id, method = the full gRPC method name, duration in
  seconds and duration_ms, code = the status name) and the metrics by service, method and code.
"""

import logging
import re
import time
import uuid

import grpc
import structlog
from django.core import signals

from jia_payments.core.audit.trail import AuditMiddleware
from jia_payments.core.grpc import calls, errors, metrics

logger = structlog.get_logger("jia_payments.grpc")
_std_logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def _request_id(metadata) -> str:
    given = next((value for key, value in metadata or () if key == REQUEST_ID_KEY), None)
    if isinstance(given, str) and _VALID_REQUEST_ID.match(given):
        return given
    return str(uuid.uuid4())


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _code_of(context) -> grpc.StatusCode:
    code = context.code()
    return grpc.StatusCode.OK if code is None else code


def observed(behavior, method: str):
    """The unary behaviour `behavior` of `method`, with everything above around it."""
    service, name = _split(method)

    def handler(message, context):
        started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        metadata = context.invocation_metadata()
        request_id = _request_id(metadata)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
        call = calls.CallRequest(path=method, metadata=metadata, peer=context.peer())
        token = calls.enter(call)
        signals.request_started.send(sender=__name__, environ=call.META)
        try:
            return AuditMiddleware(lambda _call: _run(behavior, message, context))(call)
        finally:
            signals.request_finished.send(sender=__name__)
            calls.leave(token)
            code = _code_of(context)
            duration = time.perf_counter() - started
            user_id = call.user.user_id if call.user is not None else None
            metrics.observe(service=service, method=name, code=code.name, seconds=duration)
            level = "info" if code not in _SERVER_FAULTS else "error"
            getattr(logger, level)(
                "grpc_call",
                user_id=user_id,
                method=method,
                code=code.name,
                duration=round(duration, 6),
                duration_ms=round(duration * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()

    return handler


_SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


def _run(behavior, message, context):
    try:
        return behavior(message, context)
    except Exception as exc:
        if context.code() is not None:  # the servicer aborted the call itself
            raise
        errors.abort_with(context, exc)


# Probes, like REST's /healthz and /readyz: answered without a log line or a count (an
# orchestrator asks every few seconds).
UNOBSERVED_PREFIX = "/grpc.health.v1.Health/"


class ObservingInterceptor(grpc.ServerInterceptor):
    """Applies `observed` to every unary-unary method but the health probes; streaming calls
    (reflection, health's Watch) pass through."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        if handler_call_details.method.startswith(UNOBSERVED_PREFIX):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            observed(handler.unary_unary, handler_call_details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
