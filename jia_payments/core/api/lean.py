"""A lean dispatch for read-only API views that token callers hit the most (the entitlement check).

DRF's `APIView.dispatch` wraps the request in its `Request`, negotiates a renderer, loops over the
authenticators and the permissions, counts the rate limits and finalizes the response: for a read
served from one cache round trip, a share of its CPU worth sparing. `LeanDispatch` serves a
request with the same rules where DRF's steps have no choice to make:

- the method is one of the view's `lean_methods` (a read: the check's batch is a POST), no format
  suffix, no forced authentication (DRF's test client);
- the Accept header is one the API's negotiation answers without parsing it (`plainly_json`);
- the first authenticator (the token's) accepts the request, and every permission allows it.

Those checks change nothing, so a request that fails one goes through DRF's dispatch as before (no
token, a session, a refused token: DRF's answers, in the problem-details shape); nothing has been
counted yet. Past them the steps are DRF's own: the view's `check_throttles` (the rate limits
counted once, as always), its handler with a `LeanRequest`, an error rendered by
`handle_exception`, and the headers DRF adds (`Allow`, `Vary`).
"""

import io

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from jia_payments.core.api.negotiation import JSON, ContentNegotiation, plainly_json

_UNREAD = object()


class LeanRequest:
    """DRF's `Request` as a read's handler uses it: `query_params`, `data`, `user`, `auth` and the
    negotiated renderer; anything else is the Django request's."""

    version = versioning_scheme = None

    def __init__(self, request, view):
        self._request = request
        self._view = view
        self._data = _UNREAD
        self.user = self.auth = self.successful_authenticator = None
        self.authenticators = ()
        self.accepted_renderer, self.accepted_media_type = None, None

    def __getattr__(self, name):
        return getattr(self._request, name)

    @property
    def query_params(self):
        return self._request.GET

    @property
    def data(self):
        """The body as DRF's Request parses it: a body of the first parser's media type by that
        parser, as DRF would; any other by DRF's Request itself."""
        if self._data is _UNREAD:
            self._data = self._parsed() if self._is_plain_body() else self._drf_request().data
        return self._data

    def _is_plain_body(self) -> bool:
        meta = self._request.META
        length = meta.get("CONTENT_LENGTH", "")
        return (
            meta.get("CONTENT_TYPE") == self._view.parser_classes[0].media_type
            and length.isdigit()
            and int(length) > 0
            and getattr(self._request, "_read_started", True) is False
        )

    def _parsed(self):
        parser = self._view.get_parsers()[0]
        context = {
            **self._view.get_parser_context(self._request),
            "request": self,
            "encoding": self._request.encoding or settings.DEFAULT_CHARSET,
        }
        return parser.parse(io.BytesIO(self._request.body), parser.media_type, context)

    def _drf_request(self) -> Request:
        view = self._view
        return Request(
            self._request,
            parsers=view.get_parsers(),
            negotiator=view.get_content_negotiator(),
            parser_context=view.get_parser_context(self._request),
        )

    def authenticate(self) -> bool:
        """As DRF's Request: the first authenticator's verdict, when it has one (a refusal or
        no credentials of its kind: False, DRF's dispatch decides)."""
        if not self._view.authentication_classes:
            return False
        authenticator = self._view.authentication_classes[0]()
        try:
            found = authenticator.authenticate(self)
        except Exception:  # noqa: BLE001 (DRF's dispatch refuses it again, in its shape)
            return False
        if found is None:
            return False
        self.authenticators, self.successful_authenticator = (authenticator,), authenticator
        self.user, self.auth = found
        self._request.user, self._request.auth = found  # as DRF's Request sets them
        return True


# DRF's `default_response_headers` by view class (they are the class's: Allow and Vary), Vary first
# as DRF's finalize_response sets them.
_default_headers: dict[type, dict[str, str]] = {}


# APIView mixin for read-only views: the plainly valid token call without DRF's dispatch. After
# `CountsRideOnFirstRead` in a view's bases: its finalize_response (the counts no read took) comes
# first. No docstring: drf-spectacular would take it as the description of a view without one.
class LeanDispatch:
    lean_methods = frozenset({"GET"})

    def dispatch(self, request, *args, **kwargs):
        lean = self._lean_request(request, kwargs)
        if lean is None:
            return super().dispatch(request, *args, **kwargs)
        self.args, self.kwargs, self.request = args, kwargs, lean
        self.headers = self._default_headers()
        try:
            self.check_throttles(lean)
            response = getattr(self, request.method.lower())(lean, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (as DRF's dispatch: every error rendered)
            response = self.handle_exception(exc)
        self.response = self.finalize_response(lean, response, *args, **kwargs)
        return self.response

    def finalize_response(self, request, response, *args, **kwargs):
        """DRF's; an answer of the lean path that is no DRF Response and has no Vary of its own gets
        DRF's headers without it."""
        if type(request) is not LeanRequest or isinstance(response, Response) or response.has_header("Vary"):
            return super().finalize_response(request, response, *args, **kwargs)
        for name, value in self.headers.items():
            response[name] = value
        return response

    def _default_headers(self) -> dict[str, str]:
        headers = _default_headers.get(type(self))
        if headers is None:
            found = self.default_response_headers
            vary = found.pop("Vary", None)
            headers = _default_headers[type(self)] = found if vary is None else {"Vary": vary, **found}
        return dict(headers)

    def _lean_request(self, request, kwargs) -> LeanRequest | None:
        """The request as a LeanRequest, authenticated and permitted; None: DRF's dispatch."""
        if (
            request.method not in self.lean_methods
            or request.method.lower() not in self.http_method_names
            or not hasattr(self, request.method.lower())
            or self.versioning_class is not None
            or self.content_negotiation_class is not ContentNegotiation
            or getattr(request, "_force_auth_user", None) is not None
            or getattr(request, "_force_auth_token", None) is not None
        ):
            return None
        lean = LeanRequest(request, self)
        if not plainly_json(lean, self.renderer_classes, kwargs.get(api_settings.FORMAT_SUFFIX_KWARG)):
            return None
        if not lean.authenticate() or not self._permitted(lean):
            return None
        lean.accepted_renderer, lean.accepted_media_type = self.renderer_classes[0](), JSON
        return lean

    def _permitted(self, lean: LeanRequest) -> bool:
        try:
            return all(permission.has_permission(lean, self) for permission in self.get_permissions())
        except Exception:  # noqa: BLE001 (DRF's dispatch raises it again, in its shape)
            return False
