"""The per-user entitlement cache: one entry per user holding every row the access check needs.

A hit is one Redis round trip (the user's generation token and entry) and no SQL; a miss is that
round trip (which gives a user without a token one), the query, and one more to store the entry.

Never stale: every write that can change a user's answer calls `invalidate_users` after its
commit, which gives each affected user a new random generation token and deletes the entry. A
reader notes the token *before* reading the database and stores it inside the entry; an entry
whose token is not the current one is a miss. So a reader that read the database before a write
committed can never plant its old answer after that write's invalidation. Entries also never
outlive the earliest future expiry inside them (and the check compares `expires_at` with the
clock on every read anyway).

Redis down: reads and writes of the cache are skipped for a short while (a per-process circuit
breaker), the check answers from the database, and a warning is logged.

On Redis (django-redis) the cache speaks to redis-py directly: a read is one Lua script (the
request's rate-limit counts, when its view defers them, and the two GETs; a missing token is set
in the same script), a store is one script that writes the entry only under the current token,
and values are bytes of their own: the generation token as its ASCII hex, an entry as JSON
(orjson) `[token, [row, ...]]` with each row a list of its fields. Other caches (local memory in
development) hold the same values as Python objects through Django's cache API.
"""

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.core.cache import caches
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from entitlements import metrics
from jia_payments.core.api.throttling import RedisScript, redis_client_of, take_pending_counts
from jia_payments.core.api.validation import is_plain_user_id

logger = logging.getLogger(__name__)

# v2: the entry and the generation token as bytes of their own (JSON, ASCII) instead of pickles.
KEY_VERSION = "v2"
# Writes invalidate the entries of these earlier versions too: during a rolling deploy, workers
# still running the code that reads them must not answer from an entry a write has changed.
EARLIER_KEY_VERSIONS = ("v1",)
# A plain user id up to this length is its own key part; any other is hashed (short, safe keys).
CACHE_SAFE_USER_ID_LENGTH = 120
_CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)


def _setting(name: str, default):
    return getattr(settings, name, default)


def _alias() -> str:
    return _setting("ENTITLEMENTS_CACHE_ALIAS", "default")


def _cache():
    return caches[_alias()]


def _user_part(user_id: str) -> str:
    if is_plain_user_id(user_id, max_length=CACHE_SAFE_USER_ID_LENGTH):
        return user_id
    return "h." + hashlib.sha256(user_id.encode()).hexdigest()


def entry_key(user_id: str, version: str = KEY_VERSION) -> str:
    return f"ent:{version}:e:{_user_part(user_id)}"


def generation_key(user_id: str, version: str = KEY_VERSION) -> str:
    return f"ent:{version}:g:{_user_part(user_id)}"


class CacheStats:
    """Hit/miss/error counts of this process, for metrics (`snapshot()`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.hits = self.misses = self.errors = self.invalidations = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
        metrics.entitlement_cache_counted(name, n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "errors": self.errors,
                "invalidations": self.invalidations,
            }

    def reset(self) -> None:
        with self._lock:
            self.hits = self.misses = self.errors = self.invalidations = 0


stats = CacheStats()


class _Breaker:
    """After a cache error, leave the cache alone for `ENTITLEMENTS_CACHE_RETRY_SECONDS`."""

    def __init__(self):
        self.open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def trip(self, error: Exception, action: str) -> None:
        stats.count("errors")
        was_closed = self.allows()
        self.open_until = time.monotonic() + _setting("ENTITLEMENTS_CACHE_RETRY_SECONDS", 5.0)
        if was_closed:
            logger.warning(
                "entitlement cache unavailable (%s: %s); answering from the database",
                action,
                error.__class__.__name__,
            )

    def reset(self) -> None:
        self.open_until = 0.0


breaker = _Breaker()


@dataclass(frozen=True)
class Lookup:
    """What a read found: `rows` (None on a miss) and the token to store a fresh entry under."""

    rows: tuple | None
    token: str | None


def lookup(user_id: str, row_type=tuple) -> Lookup:
    """One round trip. A hit returns the cached rows, each a `row_type` of its fields; a miss
    returns the token to `store` with."""
    if not breaker.allows():
        stats.count("misses")
        return Lookup(rows=None, token=None)
    gen_key, data_key = generation_key(user_id), entry_key(user_id)
    try:
        found = _get_many(_cache(), [gen_key, data_key])
    except _CACHE_ERRORS as error:
        breaker.trip(error, "read")
        stats.count("misses")
        return Lookup(rows=None, token=None)
    token, entry = found.get(gen_key), found.get(data_key)
    if token is not None and entry is not None and entry[0] == token:
        stats.count("hits")
        return Lookup(rows=tuple(map(row_type, entry[1])), token=token)
    stats.count("misses")
    if token is None:
        token = _new_token(user_id)
    return Lookup(rows=None, token=token)


# KEYS: the rate-limit windows to count in (ARGV: their ttls), then the generation token and the
# entry; the last two ARGV: the token to give a user who has none, and its ttl (ms). Returns the
# counts, then the token and the entry (nil when missing).
_COUNT_AND_READ = RedisScript(
    """
local windows = #KEYS - 2
local found = {}
for i = 1, windows do
  redis.call('SET', KEYS[i], 0, 'EX', ARGV[i], 'NX')
  found[i] = redis.call('INCR', KEYS[i])
end
local token = redis.call('GET', KEYS[windows + 1])
if not token then
  token = ARGV[windows + 1]
  redis.call('SET', KEYS[windows + 1], token, 'PX', ARGV[windows + 2])
end
found[windows + 1] = token
found[windows + 2] = redis.call('GET', KEYS[windows + 2])
return found
"""
)

# KEYS: the generation token, the entry; ARGV: the token the entry was read under, the entry, its
# ttl (ms). A write's invalidation since the read changed the token: then nothing is written.
_STORE_IF_CURRENT = RedisScript(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
return 0
"""
)


def _get_many(cache, keys: list[str]) -> dict:
    """The generation token (set when missing) and the entry (`keys`), decoded; the request's
    rate-limit counts, when its view defers them, go in the same command (and a passed limit
    raises Throttled before anything is answered)."""
    client = redis_client_of(cache)
    if client is None:
        return cache.get_many(keys)
    pending = take_pending_counts() if _alias() == "default" else None
    windows, ttls = pending.windows_to_count(cache.make_key) if pending is not None else ([], [])
    try:
        found = _COUNT_AND_READ(
            client,
            [*windows, *(cache.make_key(key) for key in keys)],
            [*ttls, _random_token(), _ms(_generation_ttl())],
        )
    except Exception:
        if pending is not None:
            pending.failed()
        raise
    if pending is not None:
        pending.counted(found[: len(windows)])
    token, entry = found[len(windows) :]
    decoded = {keys[0]: token.decode("ascii")}
    if entry is not None:
        decoded[keys[1]] = _decode_entry(entry)
    return decoded


def _encode_entry(token: str, rows: tuple) -> bytes:
    return orjson.dumps([token, [list(row) for row in rows]])


def _decode_entry(value: bytes) -> tuple | None:
    """(token, rows as lists of fields); None for anything else (never a wrong answer)."""
    try:
        token, rows = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    return token, rows


def _random_token() -> str:
    return uuid.uuid4().hex


def _new_token(user_id: str) -> str | None:
    """Give a user without a generation token one (add; a concurrent winner's token wins). Other
    caches only: on Redis the read sets it."""
    cache, key = _cache(), generation_key(user_id)
    token = _random_token()
    try:
        if cache.add(key, token, timeout=_generation_ttl()):
            return token
        return cache.get(key)
    except _CACHE_ERRORS as error:
        breaker.trip(error, "token")
        return None


def store(user_id: str, token: str | None, rows: tuple, ttl: float | None) -> None:
    """Cache `rows` under `token` for at most `ttl` seconds (None: the maximum lifetime)."""
    if token is None or not breaker.allows():
        return
    lifetime = _max_ttl() if ttl is None else min(ttl, _max_ttl())
    if lifetime < 0.001:
        return
    cache = _cache()
    client = redis_client_of(cache)
    try:
        if client is None:
            cache.set(entry_key(user_id), (token, rows), timeout=lifetime)
            return
        try:
            value = _encode_entry(token, rows)
        except orjson.JSONEncodeError:  # a usage limit JSON holds but orjson not (an int > 64 bits)
            return
        keys = [cache.make_key(generation_key(user_id)), cache.make_key(entry_key(user_id))]
        _STORE_IF_CURRENT(client, keys, [token, value, _ms(lifetime)])
    except _CACHE_ERRORS as error:
        breaker.trip(error, "write")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def invalidate_users(user_ids) -> None:
    """New generation tokens and no entries for these users. Call after commit."""
    user_ids = {u for u in user_ids if u}
    if not user_ids:
        return
    stats.count("invalidations", len(user_ids))
    cache = _cache()
    client = redis_client_of(cache)
    try:
        versions = (KEY_VERSION, *EARLIER_KEY_VERSIONS)
        generations = [generation_key(u, v) for u in user_ids for v in versions]
        entries = [entry_key(u, v) for u in user_ids for v in versions]
        if client is None:
            cache.set_many({key: _random_token() for key in generations}, timeout=_generation_ttl())
            cache.delete_many(entries)
        else:
            pipe = client.pipeline(transaction=False)
            for key in generations:
                pipe.set(cache.make_key(key), _random_token(), px=_ms(_generation_ttl()))
            pipe.delete(*(cache.make_key(key) for key in entries))
            pipe.execute()
    except _CACHE_ERRORS as error:
        # The entries left behind die within ENTITLEMENTS_CACHE_MAX_TTL.
        logger.error(
            "entitlement cache invalidation failed for %d users (%s)", len(user_ids), error.__class__.__name__
        )
        breaker.trip(error, "invalidate")


def _max_ttl() -> float:
    return float(_setting("ENTITLEMENTS_CACHE_MAX_TTL", 300))


def _generation_ttl() -> float:
    # Outlives any entry by far; a missing token simply makes the next read a miss.
    return max(_max_ttl() * 24, 86400.0)
