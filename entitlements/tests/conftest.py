import pytest

from entitlements import cache


@pytest.fixture(autouse=True)
def _fresh_entitlement_cache():
    """Each test starts with no cached entries, a closed circuit breaker and zeroed counters."""
    from django.core.cache import caches

    caches["default"].clear()
    cache.breaker.reset()
    cache.stats.reset()
    yield
    cache.breaker.reset()


@pytest.fixture
def outbox():
    """The entitlement events recorded so far, as (type, entitlement id) pairs."""
    from jia_payments.core.models import OutboxEvent

    def events(kind_prefix: str = "entitlement."):
        return [
            (e.type, e.aggregate_id)
            for e in OutboxEvent.objects.filter(type__startswith=kind_prefix).order_by("id")
        ]

    return events


@pytest.fixture
def audit_reasons():
    """The reasons the audit trail gives for the updates of a row, oldest first."""
    from auditlog.models import LogEntry

    def reasons(row) -> list:
        entries = LogEntry.objects.filter(object_pk=str(row.pk), action=LogEntry.Action.UPDATE).order_by("id")
        return [(entry.additional_data or {}).get("reason") for entry in entries]

    return reasons
