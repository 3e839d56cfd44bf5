"""Per-request log fields on top of django-structlog's RequestMiddleware.

django-structlog binds `request_id` (from `X-Request-ID` when sent) and logs request_started /
request_finished. These receivers keep a sane request id, return it in the response header, bind
the client's `ip` as the rate limits see it, and give the finished line `method`, `path`, `status`,
`duration_ms` and the caller's `user_id` (the API caller is a `Principal`, not a Django user, so
django-structlog cannot find it by itself).
"""

import re
import time
import uuid

import structlog
from django.dispatch import receiver
from django.utils.functional import SimpleLazyObject, empty
from django_structlog import signals
from rest_framework.throttling import BaseThrottle

from jia_payments.core.api.auth import Principal

REQUEST_ID_HEADER = "X-Request-ID"
_client_address = BaseThrottle()
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


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


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


@receiver(signals.bind_extra_request_metadata, dispatch_uid="core.request_started_fields")
def _on_request_started(request, logger, log_kwargs, **kwargs):
    request_id = current_request_id()
    if not request_id or not _VALID_REQUEST_ID.match(request_id):
        # An id we would not want in our logs (too long, odd characters): make our own.
        structlog.contextvars.bind_contextvars(request_id=str(uuid.uuid4()))
    request._log_started_at = time.monotonic()
    # The peer, or the address the declared proxies (THROTTLE_NUM_PROXIES) put in X-Forwarded-For:
    # the same client address the rate limits count, never a header the client chose.
    structlog.contextvars.bind_contextvars(ip=_client_address.get_ident(request))
    log_kwargs.pop("request", None)
    log_kwargs.update(method=request.method, path=request.path)


@receiver(signals.bind_extra_request_finished_metadata, dispatch_uid="core.request_finished_fields")
def _on_request_finished(request, logger, response, log_kwargs, **kwargs):
    structlog.contextvars.bind_contextvars(user_id=caller_id(_user_already_loaded(request)))
    started = getattr(request, "_log_started_at", None)
    log_kwargs.pop("request", None)
    log_kwargs.pop("code", None)
    log_kwargs.update(
        method=request.method,
        path=request.path,
        status=response.status_code,
        duration_ms=round((time.monotonic() - started) * 1000, 1) if started else None,
    )
    request_id = current_request_id()
    if request_id:
        response[REQUEST_ID_HEADER] = request_id


@receiver(signals.update_failure_response, dispatch_uid="core.request_failed_header")
def _on_request_failed(request, response, **kwargs):
    request_id = current_request_id()
    if request_id:
        response[REQUEST_ID_HEADER] = request_id
