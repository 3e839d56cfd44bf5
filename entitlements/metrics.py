"""The entitlements app's business metrics: access checks by result and the check cache's hits,
misses and errors (served by `jia_payments.core.ops.metrics`). The check path pays one pre-bound
counter increment each."""

from prometheus_client import Counter

from jia_payments.core.ops.metrics import PREFIX

# --- Entitlements (the access-check hot path: one pre-bound counter increment each) -------------

ENTITLEMENT_CHECKS = Counter(
    f"{PREFIX}_entitlement_checks",
    "Entitlement checks answered, by result (active = access granted; else why not).",
    ["result"],
)
ENTITLEMENT_CACHE = Counter(
    f"{PREFIX}_entitlement_cache_lookups",
    "Entitlement cache lookups (one per check request, batch checks included), by hit or miss.",
    ["result"],
)
ENTITLEMENT_CACHE_ERRORS = Counter(
    f"{PREFIX}_entitlement_cache_errors",
    "Redis errors of the entitlement cache (checks then answer from the database).",
)
ENTITLEMENT_CHECK_RESULTS = ("active", "no_entitlement", "expired", "revoked")
_check_counters = {result: ENTITLEMENT_CHECKS.labels(result=result) for result in ENTITLEMENT_CHECK_RESULTS}
_cache_counters = {
    "hits": ENTITLEMENT_CACHE.labels(result="hit"),
    "misses": ENTITLEMENT_CACHE.labels(result="miss"),
    "errors": ENTITLEMENT_CACHE_ERRORS,
}


def entitlement_checked(reason: str, n: int = 1) -> None:
    counter = _check_counters.get(reason)
    if counter is not None:
        counter.inc(n)


def entitlement_cache_counted(name: str, n: int = 1) -> None:
    """`entitlements.cache.CacheStats.count` names: hits, misses, errors (others are not exported)."""
    counter = _cache_counters.get(name)
    if counter is not None:
        counter.inc(n)
