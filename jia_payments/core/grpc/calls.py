"""One gRPC call seen as the REST code sees a request, and the per-call rules servicers declare.

`CallRequest` holds what the REST authentication, permission, throttle, idempotency and audit code
read from a request: `META` (the call's metadata as HTTP headers, the peer as REMOTE_ADDR),
`method` (GET for reads, POST for writes: the write rate limit and idempotency key by it), `path`
(the full gRPC method name), `user` (the Principal), `headers` and `data` (the request message as a dict).
"""

import functools
from contextvars import ContextVar

from django.http.request import HttpHeaders
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

from jia_payments.core.api.auth import BetterAuthTokenAuthentication
from jia_payments.core.api.permissions import IsAuthenticatedCaller

_current: ContextVar["CallRequest | None"] = ContextVar("grpc_call", default=None)
_authentication = BetterAuthTokenAuthentication()


def _remote_addr(peer: str) -> str:
    """grpc's peer ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:...") as an address."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return ""


class CallRequest:
    def __init__(self, *, path: str, metadata, peer: str):
        self.path = path
        self.method = "GET"
        self.META = {"REMOTE_ADDR": _remote_addr(peer)}
        for key, value in metadata or ():
            if isinstance(value, str) and not key.endswith("-bin"):
                self.META["HTTP_" + key.upper().replace("-", "_")] = value
        self.user = None
        self.auth = None
        self.data: dict = {}
        self.query_params: dict = {}

    @functools.cached_property
    def headers(self) -> HttpHeaders:
        return HttpHeaders(self.META)


def current_call() -> CallRequest | None:
    return _current.get()


def enter(call: CallRequest):
    return _current.set(call)


def leave(token) -> None:
    _current.reset(token)


def authenticate(call: CallRequest) -> None:
    """The REST authentication: `better-auth-token` (or `authorization: Bearer`) metadata."""
    result = _authentication.authenticate(call)
    if result is not None:
        call.user, call.auth = result


def check_permission(call: CallRequest, permission) -> None:
    if permission().has_permission(call, None):
        return
    if call.user is None:
        raise exceptions.NotAuthenticated()
    raise exceptions.PermissionDenied(getattr(permission, "message", None))


def check_throttles(call: CallRequest, skip: tuple = ()) -> None:
    """REST's rate limits (the same classes, counters and rates)."""
    waits = []
    for throttle_class in api_settings.DEFAULT_THROTTLE_CLASSES:
        if issubclass(throttle_class, skip):
            continue
        throttle = throttle_class()
        if not throttle.allow_request(call, None):
            waits.append(throttle.wait())
    if waits:
        raise exceptions.Throttled(max((wait for wait in waits if wait is not None), default=None))


def rpc(*, permission=IsAuthenticatedCaller, write: bool = False, skip_throttles: tuple = ()):
    """Declare a servicer method's rules: who may call it, whether it writes (the write rate
    limit), throttles it does not spend. The method is called as `method(self, message, call)`."""

    def decorate(method):
        @functools.wraps(method)
        def handler(servicer, message, context):
            call = current_call()
            call.method = "POST" if write else "GET"
            authenticate(call)
            check_permission(call, permission)
            check_throttles(call, skip_throttles)
            return method(servicer, message, call)

        return handler

    return decorate


PUBLIC = AllowAny
