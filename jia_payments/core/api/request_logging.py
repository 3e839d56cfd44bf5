"""The request log line: one JSON line per request, `request_finished`, and the request id.

`RequestLogMiddleware` (outermost but the probes) binds `request_id` (from `X-Request-ID` when it
is a sane id, else a new uuid4), returns it in the response header, binds the client's `ip` as the
rate limits see it, and logs `request_finished` with `method`, `path`, `status`, `duration_ms` and
the caller's `user_id` (the API caller is a `Principal`, not a Django user). An exception no view
turned into a response is logged once as `request_failed` (with its traceback) instead. With the
same clock it records the request metrics (`metrics.RequestMetricsRecorder`): one middleware
observes the request, around everything but the probes.

The line is the one django-structlog's RequestMiddleware wrote (same logger name, event, fields
and levels: info, warning for 4xx, error for 5xx; `request_started` only at DEBUG), written
directly instead of through its signals. django-structlog stays installed for the Celery side:
the request id bound here travels with the tasks a request enqueues.
"""

import logging
import re
import sys
import uuid
from timeit import default_timer

import structlog
from django.core.exceptions import PermissionDenied
from django.core.signals import got_request_exception
from django.http import Http404
from django.utils.functional import SimpleLazyObject, empty
from rest_framework.throttling import BaseThrottle

from jia_payments.core.api.auth import Principal
from jia_payments.core.ops import tracing
from jia_payments.core.ops.metrics import RequestMetricsRecorder

REQUEST_ID_HEADER = "X-Request-ID"
LOGGER_NAME = "django_structlog.middlewares.request"  # the name operators' queries know the line by
_client_address = BaseThrottle()
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_FAILED = "_log_request_failed"

logger = structlog.get_logger(LOGGER_NAME)
_stdlib_logger = logging.getLogger(LOGGER_NAME)


def caller_id(user) -> str | None:
    """The id logs and the audit trail use for whoever made a request."""
    if isinstance(user, Principal):
        return user.user_id
    if user is not None and getattr(user, "is_authenticated", False):
        return f"staff:{user.get_username()}"
    return None


def _user_already_loaded(request):
    """request.user if something already loaded it: evaluating it here would touch the session."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        return None if user._wrapped is empty else user._wrapped
    return user


class _Peer:
    """What DRF's client address rule reads of a request (REMOTE_ADDR and X-Forwarded-For), without
    building `request.headers`, Django's mapping of every header, which nothing else here needs."""

    __slots__ = ("META", "headers")

    def __init__(self, request):
        self.META = request.META
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
        self.headers = {} if forwarded is None else {"x-forwarded-for": forwarded}


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


def _request_id(request) -> str:
    sent = request.META.get("HTTP_X_REQUEST_ID")
    # An id we would not want in our logs (too long, odd characters): make our own.
    return sent if sent and _VALID_REQUEST_ID.match(sent) else str(uuid.uuid4())


def _level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if 400 <= status < 500:
        return logging.WARNING
    return logging.INFO


def _request_text(request) -> str:
    return f"{request.method} {request.get_full_path()}"


class RequestLogMiddleware:
    """The request's observation around the whole stack but the probes: its log context and log
    line (see the module docstring) and its request metrics (`metrics.RequestMetricsRecorder`),
    with one clock. Django calls the recorder's view, template and exception hooks from here."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.metrics = RequestMetricsRecorder()
        self.process_view = self.metrics.process_view
        self.process_template_response = self.metrics.process_template_response
        self.process_exception = self.metrics.process_exception
        got_request_exception.connect(_on_exception, weak=False, dispatch_uid="core.request_failed")

    def __call__(self, request):
        started = default_timer()
        request_id = _request_id(request)
        # The peer, or the address the declared proxies (THROTTLE_NUM_PROXIES) put in X-Forwarded-For:
        # the same client address the rate limits count, never a header the client chose.
        structlog.contextvars.bind_contextvars(
            request_id=request_id, ip=_client_address.get_ident(_Peer(request))
        )
        try:
            self.metrics.started(request, started)
            if _stdlib_logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "request_started",
                    method=request.method,
                    path=request.path,
                    user_agent=request.META.get("HTTP_USER_AGENT"),
                )
            response = self.get_response(request)
            elapsed = default_timer() - started
            response[REQUEST_ID_HEADER] = request_id
            self.metrics.finished(request, response, elapsed)
            if not request.__dict__.pop(_FAILED, False):
                self._log_finished(request, response, elapsed)
            return response
        finally:
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def _log_finished(request, response, elapsed: float) -> None:
        user_id = caller_id(_user_already_loaded(request))
        structlog.contextvars.bind_contextvars(user_id=user_id)
        tracing.set_user(user_id)  # only with OTEL_RECORD_USER_ID=true
        status = response.status_code
        logger.log(
            _level(status),
            "request_finished",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
        )


def _on_exception(sender, request=None, **kwargs):
    """got_request_exception: an exception became Django's 500 answer; logged with its traceback."""
    if request is None or request.__dict__.get(_FAILED):
        return
    error = sys.exc_info()[1]
    if isinstance(error, Http404 | PermissionDenied):
        return  # answered 404/403 and logged as request_finished
    request.__dict__[_FAILED] = True
    structlog.contextvars.bind_contextvars(user_id=caller_id(_user_already_loaded(request)))
    logger.exception("request_failed", code=500, request=_request_text(request))
