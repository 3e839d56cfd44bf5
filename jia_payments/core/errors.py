"""Domain errors and the one renderer of every API error: RFC 9457 problem details.

A service raises a `DomainError` subclass with a stable `code`; views never build error bodies.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class DomainError(Exception):
    status = 400
    code = "invalid"
    title = "Invalid request"

    def __init__(self, detail: str | None = None, *, errors: dict | None = None):
        self.detail = detail or self.title
        self.errors = errors
        super().__init__(self.detail)


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class InvalidTransition(DomainError):
    status, code, title = 409, "invalid_transition", "Invalid status transition"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(DomainError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


def problem(status: int, code: str, title: str, detail: str, errors: dict | None = None) -> dict:
    body = {
        "type": f"https://docs.jia.app/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


def _as_field_errors(detail) -> dict:
    """DRF's nested ErrorDetail structure as {"field": ["message", ...]}."""
    if isinstance(detail, dict):
        out = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, messages in _as_field_errors(value).items():
                    out[f"{field}.{sub}"] = messages
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for index, item in enumerate(value):
                    for sub, messages in _as_field_errors(item).items():
                        out[f"{field}[{index}].{sub}"] = messages
            else:
                out[field] = [str(m) for m in (value if isinstance(value, list) else [value])]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


_DRF_CODES = {
    drf.NotAuthenticated: (401, "not_authenticated", "Authentication required"),
    drf.AuthenticationFailed: (401, "authentication_failed", "Authentication failed"),
    drf.PermissionDenied: (403, "permission_denied", "Permission denied"),
    drf.NotFound: (404, "not_found", "Not found"),
    drf.MethodNotAllowed: (405, "method_not_allowed", "Method not allowed"),
    drf.NotAcceptable: (406, "not_acceptable", "Not acceptable"),
    drf.UnsupportedMediaType: (415, "unsupported_media_type", "Unsupported media type"),
    drf.ParseError: (400, "malformed_request", "Malformed request body"),
    drf.Throttled: (429, "throttled", "Too many requests"),
}


def _problem_response(body: dict, headers: dict | None = None) -> Response:
    return Response(body, status=body["status"], headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_details_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every error the API raises, in one shape."""
    set_rollback()
    headers = {}
    if isinstance(exc, DomainError):
        return _problem_response(problem(exc.status, exc.code, exc.title, exc.detail, exc.errors))
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return _problem_response(
            problem(413, "payload_too_large", "Payload too large", "The request body is too large.")
        )
    if isinstance(exc, drf.ValidationError):
        errors = _as_field_errors(exc.detail)
        return _problem_response(
            problem(400, "invalid", "Invalid request", "The request has invalid fields.", errors)
        )
    if isinstance(exc, drf.APIException):
        status, code, title = next(
            (spec for cls, spec in _DRF_CODES.items() if isinstance(exc, cls)),
            (exc.status_code, exc.default_code, "Error"),
        )
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait) + (0 if float(exc.wait).is_integer() else 1))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return _problem_response(problem(status, code, title, str(detail)), headers)
    logger.exception("unhandled error in API view", exc_info=exc)
    return _problem_response(
        problem(500, "server_error", "Internal server error", "An unexpected error occurred.")
    )


def _wants_problem(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/stripe/")


def not_found_view(request, exception=None):
    if _wants_problem(request):
        body = problem(404, "not_found", "Not found", "No such resource.")
        return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error_view(request):
    if _wants_problem(request):
        body = problem(500, "server_error", "Internal server error", "An unexpected error occurred.")
        return JsonResponse(body, status=500, content_type=PROBLEM_CONTENT_TYPE)
    from django.views.defaults import server_error

    return server_error(request)
