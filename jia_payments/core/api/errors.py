"""Domain errors and the one renderer of every API error: RFC 9457 problem details.

A service raises a `DomainError` subclass with a stable `code`; views never build error bodies.
Every error an API client can meet has the shape
`{"type", "title", "status", "detail", "code"[, "errors": {"field": ["message", ...]}]}` with
`Content-Type: application/problem+json`: DRF's own exceptions, Django's `Http404`,
`PermissionDenied`, `ValidationError` and `RequestDataTooBig`, unhandled exceptions (500, logged,
never a stack trace) and, through `handler400/403/404/500`, the errors Django answers outside a view.
"""

import logging
import math
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.jia.app/problems/"


class DomainError(Exception):
    """A business rule said no. Subclasses set a stable `code`, an HTTP `status` and a `title`."""

    status = 400
    code = "invalid"
    title = "Invalid request"

    def __init__(self, detail: str | None = None, *, errors: dict | None = None):
        self.detail = detail or self.title
        self.errors = errors
        super().__init__(self.detail)


class BadRequest(DomainError):
    code, title = "bad_request", "Bad request"


class Forbidden(DomainError):
    status, code, title = 403, "permission_denied", "Permission denied"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class InvalidTransition(DomainError):
    status, code, title = 409, "invalid_transition", "Invalid status transition"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(DomainError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class InvalidFields(DomainError):
    """422 `invalid` with field errors: fields the schema allows that do not fit the data (a plan
    without that feature, a time already past) or the caller (a service must name the user). A
    400 `invalid` is a request the OpenAPI schema itself forbids."""

    status = 422


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class IdempotencyKeyInProgress(DomainError):
    status, code, title = 409, "idempotency_key_in_progress", "Request with this key in progress"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class ServerError(DomainError):
    status, code, title = 500, "server_error", "Internal server error"


class ProblemJSONRenderer(JSONRenderer):
    """Renders error bodies, whatever the client asked for (no HTML error pages on the API)."""

    media_type = PROBLEM_CONTENT_TYPE
    format = "problem+json"


def problem(status: int, code: str, title: str, detail: str, errors: dict | None = None) -> dict:
    body = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


def _path(prefix: str, key) -> str:
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def _as_field_errors(detail, prefix: str = "") -> dict:
    """DRF's nested ErrorDetail structure as {"field": [...], "items[2].field": [...]}."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            out.update(_as_field_errors(value, _path(prefix, key)))
        return out
    if isinstance(detail, list) and any(isinstance(item, dict) for item in detail):
        out = {}
        for index, item in enumerate(detail):
            if item:
                out.update(_as_field_errors(item, _path(prefix, index)))
        return out
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


_DRF_CODES = {
    drf.NotAuthenticated: (401, "not_authenticated", "Authentication required"),
    drf.AuthenticationFailed: (401, "authentication_failed", "Authentication failed"),
    drf.PermissionDenied: (Forbidden.status, Forbidden.code, Forbidden.title),
    drf.NotFound: (404, "not_found", "Not found"),
    drf.MethodNotAllowed: (405, "method_not_allowed", "Method not allowed"),
    drf.NotAcceptable: (406, "not_acceptable", "Not acceptable"),
    drf.UnsupportedMediaType: (415, "unsupported_media_type", "Unsupported media type"),
    drf.ParseError: (400, "malformed_request", "Malformed request body"),
    drf.Throttled: (429, "throttled", "Too many requests"),
}

SERVER_ERROR_DETAIL = "An unexpected error occurred."


def identity_of(error: type[Exception]) -> tuple[int, str, str]:
    """(status, code, title) of an error class: a DomainError's own, or DRF's as we render it."""
    if issubclass(error, DomainError):
        return error.status, error.code, error.title
    return next(spec for cls, spec in _DRF_CODES.items() if issubclass(error, cls))


def problem_of(error: type[Exception], detail: str, errors: dict | None = None) -> dict:
    """The problem body of an error class, with this detail."""
    return problem(*identity_of(error), detail, errors)


_STATUS_CODES = {
    400: "bad_request",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    500: "server_error",
}


def code_for(status: int) -> str:
    """The `code` of an error known only by its status (answered outside a DRF view)."""
    return _STATUS_CODES.get(status) or title_for(status).lower().replace(" ", "_").replace("-", "_")


def title_for(status: int) -> str:
    """The one title of a status wherever an error is rendered: the DRF and domain errors' own
    (404 "Not found"), else the HTTP reason phrase in the same sentence case."""
    known = {spec[0]: spec[2] for spec in _DRF_CODES.values()} | {
        400: BadRequest.title,
        413: PayloadTooLarge.title,
        414: "URI too long",
        500: ServerError.title,
    }
    if status in known:
        return known[status]
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return phrase[:1] + phrase[1:].lower()


DatabaseUnreachable = (OperationalError, InterfaceError)


def _normalised(exc):
    """Django's own exceptions as their DRF or domain equivalents."""
    if isinstance(exc, Http404):
        return drf.NotFound("No such resource.")
    if isinstance(exc, DatabaseUnreachable):
        # The database went away (restart, failover): nothing was written, the caller may retry.
        logger.warning("database unavailable: %s", type(exc).__name__)
        return ServiceUnavailable("The database is unavailable; try again shortly.")
    if isinstance(exc, DjangoPermissionDenied):
        return drf.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("The request body is larger than the server accepts.")
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return drf.ValidationError(
            {("non_field_errors" if k == "__all__" else k): v for k, v in errors.items()}
        )
    return exc


def problem_for(exc) -> tuple[dict, dict]:
    """The problem body and extra headers for any exception (unknown ones are a logged 500)."""
    exc = _normalised(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors), headers
    if isinstance(exc, drf.ValidationError):
        errors = _as_field_errors(exc.detail)
        return problem_of(DomainError, "The request has invalid fields.", errors), headers
    if isinstance(exc, drf.APIException):
        status, code, title = next(
            (spec for cls, spec in _DRF_CODES.items() if isinstance(exc, cls)),
            (exc.status_code, exc.default_code, "Error"),
        )
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(math.ceil(exc.wait))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(status, code, title, str(detail)), headers
    logger.error("unhandled error in API view", exc_info=exc)
    return problem_of(ServerError, SERVER_ERROR_DETAIL), headers


def problem_details_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error the API raises, in one shape."""
    set_rollback()
    body, headers = problem_for(exc)
    request = context.get("request")
    if request is not None:
        # finalize_response keeps a renderer already chosen: errors are never rendered as HTML.
        request.accepted_renderer = ProblemJSONRenderer()
        request.accepted_media_type = PROBLEM_CONTENT_TYPE
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_response(body: dict, headers: dict | None = None) -> JsonResponse:
    """A problem as a plain Django response (outside DRF: middleware, URL-level handlers)."""
    response = JsonResponse(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path.startswith("/stripe/")


def bad_request_view(request, exception=None):
    if is_api_path(request.path):
        return problem_response(problem_of(BadRequest, "The request is malformed."))
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def permission_denied_view(request, exception=None):
    if is_api_path(request.path):
        return problem_response(problem_of(drf.PermissionDenied, "Permission denied."))
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def not_found_view(request, exception=None):
    if is_api_path(request.path):
        return problem_response(problem_of(NotFound, "No such resource."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error_view(request):
    if is_api_path(request.path):
        return problem_response(problem_of(ServerError, SERVER_ERROR_DETAIL))
    from django.views.defaults import server_error

    return server_error(request)
