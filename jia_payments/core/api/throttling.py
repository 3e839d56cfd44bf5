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

A read-only view whose answer starts with a Redis read (the entitlement check) can spare the
throttles' round trip: with `CountsRideOnFirstRead` its throttles' counts are queued, and that
read (`take_pending_counts`, then `PendingCounts.windows_to_count` and `.counted` around one
command) sends them with its own and applies the verdict before the view answers. Counts no read
took are sent before the response leaves. Either way every request is counted, exactly as above.

On Redis a count is one Lua script (`RedisScript`): one command to pack, send and parse, where a
pipeline of `SET NX` and `INCR` cost redis-py twice the Python for the same round trip.
"""

import functools
import hashlib
import logging
from contextvars import ContextVar

from django.core.cache import cache
from redis.exceptions import NoScriptError
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from jia_payments.core.api.permissions import principal_of
from jia_payments.core.ops import tracing

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RedisScript:
    """A Lua script run by its SHA1 (`EVALSHA`), sent whole once when the server does not have it
    yet (a new or restarted Redis)."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)

    def __call__(self, client, keys: list, args: list):
        # Traced, a command goes through redis-py's Redis.execute_command, which the Redis
        # instrumentation wraps in a span.
        run = client.execute_command if tracing.active() else functools.partial(_command, client)
        try:
            return run("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return run("EVAL", self.source, len(keys), *keys, *args)


def _command(client, *args):
    """`client.execute_command(*args)` for a command whose reply is its answer as sent (no response
    callback), without redis-py's bookkeeping around each command (observability hooks, failure
    accounting: more of the CPU than packing and parsing the command). The same pooled connection
    and the same retries: the connection's retry policy, disconnecting after each failure."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        return connection.retry.call_with_retry(
            lambda: _send_and_read(connection, args), lambda _error: connection.disconnect()
        )
    finally:
        pool.release(connection)


def _send_and_read(connection, args):
    connection.send_command(*args)
    return connection.read_response()


# KEYS: the windows to count in; ARGV: each one's ttl. Returns the counts.
COUNT_IN_WINDOWS = RedisScript(
    """
local counts = {}
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 0, 'EX', ARGV[i], 'NX')
  counts[i] = redis.call('INCR', KEYS[i])
end
return counts
"""
)


def redis_client_of(store):
    """The redis-py client behind a django-redis cache, None for other caches."""
    get_client = getattr(getattr(store, "client", None), "get_client", None)
    return None if get_client is None else get_client(write=True)


def _count_in_window(store, key: str, ttl: int) -> int:
    """Count one request under `key` (created with a `ttl`) and return the count so far.

    On Redis one command: `SET key 0 EX ttl NX` and `INCR key` in a script. Other caches (local
    memory in development): add, then incr.
    """
    client = redis_client_of(store)
    if client is not None:
        return COUNT_IN_WINDOWS(client, [store.make_key(key)], [ttl])[0]
    store.add(key, 0, ttl)
    try:
        return store.incr(key)
    except ValueError:  # the key expired between add and incr: a new window
        store.set(key, 1, ttl)
        return 1


@functools.lru_cache(maxsize=32)
def _parse_rate(rate: str) -> tuple[int, int]:
    """DRF's reading of a rate ("600/min": 600 requests per 60 s), once per rate string: the rates
    are looked up per request, the few strings they take parsed once."""
    return SimpleRateThrottle.parse_rate(None, rate)


class _WindowThrottle(SimpleRateThrottle):
    cache = cache
    cache_format = "throttle:%(scope)s:%(ident)s"

    def __init__(self):
        # The rate is looked up per request (SimpleRateThrottle binds it at import time).
        pass

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def window(self, request, view) -> tuple[str, int] | None:
        """The (key, ttl) this request counts under now; None when this throttle does not apply."""
        rate = self.get_rate()
        key = self.get_cache_key(request, view) if rate else None
        if key is None:
            return None
        self.num_requests, self.duration = _parse_rate(rate)
        now = int(self.timer())
        window = now // self.duration
        self._wait = (window + 1) * self.duration - now
        return f"{key}:{window}", self.duration + 1

    def allow_request(self, request, view):
        found = self.window(request, view)
        if found is None:
            return True
        try:
            count = _count_in_window(self.cache, *found)
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


# --- counts that ride on the view's first Redis read ------------------------------------------

_pending: ContextVar["PendingCounts | None"] = ContextVar("pending_throttle_counts", default=None)


class PendingCounts:
    """A request's window counts, not yet sent."""

    def __init__(self, windows: list[tuple[_WindowThrottle, tuple[str, int]]]):
        self.windows = windows
        self.sent = False

    def windows_to_count(self, make_key) -> tuple[list[str], list[int]]:
        """The windows' full keys (`make_key`: the cache's) and ttls, for a command that counts
        them (as `COUNT_IN_WINDOWS` does) and gives the counts to `counted`."""
        self.sent = True
        return [make_key(key) for _, (key, _) in self.windows], [ttl for _, (_, ttl) in self.windows]

    def counted(self, counts: list[int]) -> None:
        """The windows' counts: raises Throttled when a limit is passed."""
        self._verdict(counts)

    def failed(self) -> None:
        self.sent = True
        logger.warning("rate limit not applied: cache unavailable")

    def send_now(self) -> None:
        """Counted in their own round trip (no read took them); raises Throttled like `counted`."""
        self.sent = True
        try:
            counts = [_count_in_window(throttle.cache, *window) for throttle, window in self.windows]
        except Exception:
            logger.warning("rate limit not applied: cache unavailable", exc_info=True)
            return
        self._verdict(counts)

    def _verdict(self, counts: list[int]) -> None:
        waits = [throttle.wait() for (throttle, _), count in zip(self.windows, counts, strict=True)
                 if count > throttle.num_requests]  # fmt: skip
        if waits:
            raise exceptions.Throttled(wait=max(waits))


def take_pending_counts() -> PendingCounts | None:
    """The current request's counts for a read to carry (once), if its view defers them."""
    pending = _pending.get()
    if pending is None or pending.sent or not pending.windows:
        return None
    return pending


class CountsRideOnFirstRead:
    """APIView mixin, for read-only views: the throttles' counts go with the first Redis read."""

    def check_throttles(self, request):
        windows = []
        for throttle in self.get_throttles():
            if not isinstance(throttle, _WindowThrottle):
                if not throttle.allow_request(request, self):
                    self.throttled(request, throttle.wait())
                continue
            window = throttle.window(request, self)
            if window is not None:
                windows.append((throttle, window))
        self._pending_counts = PendingCounts(windows)
        self._pending_token = _pending.set(self._pending_counts)

    def finalize_response(self, request, response, *args, **kwargs):
        pending = getattr(self, "_pending_counts", None)
        if pending is not None:
            _pending.reset(self._pending_token)
            self._pending_counts = None
            if not pending.sent and pending.windows:
                try:
                    pending.send_now()
                except exceptions.Throttled as throttled:
                    response = self.handle_exception(throttled)
        return super().finalize_response(request, response, *args, **kwargs)
