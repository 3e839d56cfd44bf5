"""What every unary call gets, around its servicer method, in this order:

- a request id (`x-request-id` metadata when sane, else a new one), bound to the log context and
  returned in the initial metadata;
- Django's per-request hooks (`request_started` / `request_finished`: old database connections
  closed, as for an HTTP request), the call made known to the audit trail;
- every exception mapped to a gRPC status (`errors`), never UNKNOWN with a trace;
- one log line (`grpc_call`: request_id, user_id, method = the full gRPC method name, duration in
  seconds and duration_ms, code = the status name) and the metrics by service, method and code.

A streaming call (health's Watch, reflection) gets the same request id, hooks and error mapping,
and its log line and metrics when the stream ends: CANCELLED (or DEADLINE_EXCEEDED) when the
client went away first.
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


def _begin(method: str, context) -> tuple[calls.CallRequest, object]:
    """A call starts: its request id bound to the log context and sent back, the call made
    current (for the REST code), Django's request_started."""
    structlog.contextvars.clear_contextvars()
    metadata = context.invocation_metadata()
    request_id = _request_id(metadata)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
    call = calls.CallRequest(path=method, metadata=metadata, peer=context.peer())
    token = calls.enter(call)
    signals.request_started.send(sender=__name__, environ=call.META)
    return call, token


def _end(call, token) -> None:
    """A call ends: Django's request_finished, the call no longer current."""
    signals.request_finished.send(sender=__name__)
    calls.leave(token)


def _record(call, code: grpc.StatusCode, duration: float, labels: tuple[str, str, str]) -> None:
    """An ended call's metrics and its one log line."""
    grpc_type, service, name = labels
    metrics.observe(grpc_type=grpc_type, service=service, method=name, code=code.name, seconds=duration)
    level = "info" if code not in _SERVER_FAULTS else "error"
    getattr(logger, level)(
        "grpc_call",
        user_id=call.user.user_id if call.user is not None else None,
        method=call.path,
        code=code.name,
        duration=round(duration, 6),
        duration_ms=round(duration * 1000, 1),
    )


def observed(behavior, method: str, grpc_type: str = "unary"):
    """The unary behaviour `behavior` of `method`, with everything above around it (also a
    client-streaming one: its `message` is then the iterator of the client's messages)."""
    labels = (grpc_type, *_split(method))

    def handler(message, context):
        started = time.perf_counter()
        call, token = _begin(method, context)
        try:
            return AuditMiddleware(lambda _call: _run(behavior, message, context))(call)
        finally:
            _end(call, token)
            _record(call, _code_of(context), time.perf_counter() - started, labels)
            structlog.contextvars.clear_contextvars()

    return handler


def observed_stream(behavior, method: str, grpc_type: str):
    """The behaviour `behavior` of `method` that answers a stream (`server_stream`, `bidi_stream`),
    as a generator: what is logged and counted is the stream's end (its last message sent, an
    error, or CANCELLED / DEADLINE_EXCEEDED: the client went away first)."""
    labels = (grpc_type, *_split(method))

    def handler(request, context):
        started = time.perf_counter()
        call, token = _begin(method, context)
        try:
            yield from _stream(behavior, request, context)
        finally:
            _end(call, token)
            duration = time.perf_counter() - started
            if context.code() is None and context.is_active():
                _record_at_termination(context, call, duration, labels)
            else:
                _record(call, _stream_code(context), duration, labels)
            structlog.contextvars.clear_contextvars()

    return handler


def _record_at_termination(context, call, duration: float, labels: tuple[str, str, str]) -> None:
    """A stream whose last message went while the call is still active ended OK, unless the
    client cancelled it: its cancel can reach the server as the end of its messages (the request
    iterator stops) before the call is seen as cancelled, so the code is read once the call has
    terminated (the line then follows the status the client sees)."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")

    def record():
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            _record(call, _terminated_code(context), duration, labels)

    if not context.add_callback(record):  # already terminated
        record()


def _terminated_code(context) -> grpc.StatusCode:
    """The code of a stream that ended while active, read after its termination: CANCELLED if the
    client cancelled it meanwhile. grpc's synchronous ServicerContext says it only through its
    call state (`is_active()` is false once the status is sent, however the call ended)."""
    if getattr(getattr(context, "_state", None), "client", None) == "cancelled":
        return grpc.StatusCode.CANCELLED
    return _code_of(context)


def _stream_code(context) -> grpc.StatusCode:
    """How a stream that is no longer active ended: its status, or how the client left (its
    deadline passed, or it went)."""
    if context.code() is not None:
        return context.code()
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


# The client's deadline passes before the server's (which counts from the call's arrival), and the
# cancel the client then sends can reach the server before its own timer fires: a stream the client
# leaves this close to its deadline left because of the deadline.
DEADLINE_SLACK_SECONDS = 1.0


_SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


def _run(behavior, message, context):
    try:
        return behavior(message, context)
    except Exception as exc:
        if context.code() is not None:  # the servicer aborted the call itself
            raise
        errors.abort_with(context, exc)


def _stream(behavior, request, context):
    try:
        yield from behavior(request, context)
    except Exception as exc:
        # The servicer aborted the call itself, or the client left (reading its next message fails).
        if context.code() is not None or not context.is_active():
            raise
        errors.abort_with(context, exc)


class ObservingInterceptor(grpc.ServerInterceptor):
    """Applies `observed` (or `observed_stream`) to every method, health's Check and Watch
    included: a probe that fails or slows down shows in the logs and metrics like any call."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            wrap, behavior = grpc.unary_unary_rpc_method_handler, observed(handler.unary_unary, method)
        elif handler.stream_unary is not None:
            wrap = grpc.stream_unary_rpc_method_handler
            behavior = observed(handler.stream_unary, method, "client_stream")
        elif handler.unary_stream is not None:
            wrap = grpc.unary_stream_rpc_method_handler
            behavior = observed_stream(handler.unary_stream, method, "server_stream")
        else:
            wrap = grpc.stream_stream_rpc_method_handler
            behavior = observed_stream(handler.stream_stream, method, "bidi_stream")
        return wrap(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
