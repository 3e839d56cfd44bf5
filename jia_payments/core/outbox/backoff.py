"""The relay's shared backoff while the broker is down, kept in the cache (Redis in production).

After a failed publish the relay waits 1 s, then 2, 4, ... up to EVENTS_BACKOFF_MAX_SECONDS before
it tries again; runs asked for meanwhile (on commit, by beat) return at once, so the API never
waits on a dead broker. One success clears it. Rows are never touched by this: they wait.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

KEY = "events:relay:backoff"
FIRST_DELAY_SECONDS = 1.0


def wait_seconds() -> float:
    """How long until the relay may try the broker again (0: now)."""
    state = cache.get(KEY)
    if not state:
        return 0.0
    return max(0.0, state["until"] - time.time())


def failures() -> int:
    state = cache.get(KEY)
    return state["failures"] if state else 0


def note_failure() -> float:
    """Record one more failed attempt; returns the delay before the next one."""
    count = failures() + 1
    delay = min(FIRST_DELAY_SECONDS * 2 ** (count - 1), settings.EVENTS_BACKOFF_MAX_SECONDS)
    keep = int(settings.EVENTS_BACKOFF_MAX_SECONDS * 4) + 60
    cache.set(KEY, {"failures": count, "until": time.time() + delay}, timeout=keep)
    return delay


def clear() -> None:
    cache.delete(KEY)
