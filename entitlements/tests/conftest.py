"""What the entitlements tests share: a clean cache, the outbox's events, the audit trail's reasons,
committing on-commit work, and the rows the REST and gRPC tests both start from."""

import pytest

from entitlements import cache, services
from entitlements.models import Family
from entitlements.tests.factories import END, plan_with


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


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a write's after-commit callbacks (cache invalidation, events) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def alice_row():
    """user_alice's calendar row of a two-feature plan, by subscription, ending at END."""
    plan = plan_with(["calendar", "vault"], id="premium_x", usage_limits={"storage_gb": 50})
    rows = services.entitlements_grant_plan(
        user_id="user_alice", plan=plan, subscription_id="sub_a", expires_at=END
    )
    return next(r for r in rows if r.feature_id == "calendar")


@pytest.fixture
def family(committed):
    """user_alice's family (a calendar-only family plan of three seats) with user_kid in it."""
    plan = plan_with(["calendar"], id="family_x", max_users=3)
    with committed():
        services.entitlements_grant_plan(
            user_id="user_alice", plan=plan, subscription_id="sub_f", expires_at=END
        )
        family = Family.objects.get()
        services.family_member_add(family_id=family.pk, user_id="user_kid")
    return family
