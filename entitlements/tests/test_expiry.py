"""The expiry sweeper: batches, one event per row, row locks only (SKIP LOCKED), on Celery beat."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from entitlements import services, tasks
from entitlements.models import Entitlement
from entitlements.tests.factories import EntitlementFactory
from jia_payments.core.models import OutboxEvent
from pricing.tests.factories import FeatureFactory, PlanFactory


def _row(days: float, **fields) -> Entitlement:
    values = {
        "feature": FeatureFactory(code="calendar"),
        "plan": PlanFactory(),
        "granted_at": timezone.now() - timedelta(days=60),
        "expires_at": timezone.now() + timedelta(days=days),
        **fields,
    }
    return EntitlementFactory(**values)


@pytest.mark.django_db
def test_rows_past_expiry_become_expired_in_batches_with_one_event_each():
    due = [_row(-n - 1) for n in range(5)]
    future, lifetime = _row(3), _row(0, expires_at=None)
    cancelled = _row(-2, status="cancelled")

    with CaptureQueriesContext(connection) as queries:
        assert services.entitlements_expire_due(batch_size=2) == 5

    assert {r.pk for r in Entitlement.objects.filter(status="expired")} == {r.pk for r in due}
    for row in (future, lifetime):
        row.refresh_from_db()
        assert row.status == "active"
    cancelled.refresh_from_db()
    assert cancelled.status == "cancelled"
    events = OutboxEvent.objects.filter(type="entitlement.expired")
    assert sorted(e.aggregate_id for e in events) == sorted(str(r.pk) for r in due)
    assert all(e.envelope["data"]["status"] == "expired" for e in events)
    selects = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert len(selects) == 3  # 2 + 2 + 1 rows
    assert all("SKIP LOCKED" in sql and "LIMIT 2" in sql for sql in selects)
    assert not any("LOCK TABLE" in q["sql"].upper() for q in queries.captured_queries)
    assert services.entitlements_expire_due(batch_size=2) == 0


@pytest.mark.django_db(transaction=True)
def test_a_row_another_transaction_holds_is_skipped_and_nothing_waits():
    held, free = _row(-1), _row(-2)
    locked, release = threading.Event(), threading.Event()

    def hold_row():
        with transaction.atomic():
            Entitlement.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(timeout=60)
        connection.close()

    holder = threading.Thread(target=hold_row)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        with connection.cursor() as cursor:  # were we to wait for the held row, fail instead
            cursor.execute("SET lock_timeout = '5s'")
        assert services.entitlements_expire_due() == 1
        assert Entitlement.objects.get(pk=free.pk).status == "expired"
        assert Entitlement.objects.get(pk=held.pk).status == "active"
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert services.entitlements_expire_due() == 1  # the next run takes it
    assert Entitlement.objects.get(pk=held.pk).status == "expired"


@pytest.mark.django_db
def test_the_sweeper_runs_on_celery_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["entitlements-expire-due"]
    assert entry["task"] == tasks.expire_due_entitlements.name == "entitlements.expire_due"
    assert entry["schedule"] == settings.ENTITLEMENTS_SWEEP_SECONDS
    _row(-1)
    assert tasks.expire_due_entitlements.delay().get() == 1
    assert Entitlement.objects.get().status == "expired"
