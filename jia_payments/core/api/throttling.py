"""API rate limits (DRF throttles) counted in the shared cache: Redis in production.

DRF's SimpleRateThrottle keeps a list of timestamps per caller and writes it back (read, modify,
write), which loses counts when several gunicorn workers serve one caller at once. These throttles
count in a fixed window with an atomic increment instead: one Redis round trip per request and
exact under concurrency. Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (environment:
THROTTLE_ANON, THROTTLE_USER, THROTTLE_SERVICE, THROTTLE_WRITE), read on each request.

- anonymous callers: per IP (`anon`);
- end users: per user id (`user`); services and staff: per caller id (`service`);
- writes (POST, PUT, PATCH, DELETE) by end users and anonymous callers: also `write`, stricter.

The 429 is rendered by the problem-details handler, with `Retry-After`.
"""

import logging

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from jia_payments.core.api.permissions import principal_of

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _count_in_window(store, key: str, ttl: int) -> int:
    """Count one request under `key` (created with a `ttl`) and return the count so far.

    On Redis one round trip: `SET key 0 EX ttl NX` and `INCR key`, pipelined. Other caches (local
    memory in development): add, then incr.
    """
    get_client = getattr(getattr(store, "client", None), "get_client", None)
    if get_client is not None:
        full_key = store.make_key(key)
        pipe = get_client(write=True).pipeline(transaction=False)
        pipe.set(full_key, 0, ex=ttl, nx=True)
        pipe.incr(full_key)
        return pipe.execute()[1]
    store.add(key, 0, ttl)
    try:
        return store.incr(key)
    except ValueError:  # the key expired between add and incr: a new window
        store.set(key, 1, ttl)
        return 1


class _WindowThrottle(SimpleRateThrottle):
    cache = cache
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self):
        # The rate is looked up per request (SimpleRateThrottle binds it at import time).
        pass

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        rate = self.get_rate()
        key = self.get_cache_key(request, view) if rate else None
        if key is None:
            return True
        self.num_requests, self.duration = self.parse_rate(rate)
        now = int(self.timer())
        window = now // self.duration
        self._wait = (window + 1) * self.duration - now
        key = f"{key}:{window}"
        try:
            count = _count_in_window(self.cache, key, self.duration + 1)
        except Exception:
            logger.warning("rate limit not applied: cache unavailable", exc_info=True)
            return True
        return count <= self.num_requests

    def wait(self):
        return self._wait


class AnonRateThrottle(_WindowThrottle):
    scope = "anon"

    def get_cache_key(self, request, view):
        if principal_of(request) is not None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserRateThrottle(_WindowThrottle):
    scope = "user"

    def get_cache_key(self, request, view):
        principal = principal_of(request)
        if principal is None or principal.is_privileged:
            return None
        return self.cache_format % {"scope": self.scope, "ident": principal.user_id}


class ServiceRateThrottle(_WindowThrottle):
    scope = "service"

    def get_cache_key(self, request, view):
        principal = principal_of(request)
        if principal is None or not principal.is_privileged:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"{principal.role}:{principal.user_id}"}


class WriteRateThrottle(_WindowThrottle):
    scope = "write"

    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS:
            return None
        principal = principal_of(request)
        if principal is not None and principal.is_privileged:
            return None
        ident = principal.user_id if principal is not None else f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
