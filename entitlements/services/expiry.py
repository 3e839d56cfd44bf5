"""The expiry sweeper: active rows past their end become expired, in short batches."""

from django.db import transaction
from django.utils import timezone

from entitlements.models import Entitlement
from entitlements.services._shared import ACTIVE, EXPIRED, emit, invalidate_rows
from jia_payments.core.audit.trail import audit_context, record_changes

EXPIRY_SWEEPER = "system:expiry-sweeper"


def entitlements_expire_due(*, batch_size: int = 500, max_batches: int = 200) -> int:
    """Mark active rows past `expires_at` expired, one event each; returns how many.

    Batches of `batch_size` rows, each in its own short transaction, taking row locks with
    SKIP LOCKED: rows another transaction holds are left for the next run, nothing else waits.
    """
    total = 0
    for _ in range(max_batches):
        with audit_context(actor=EXPIRY_SWEEPER), transaction.atomic():
            now = timezone.now()
            reasons_before = dict(
                Entitlement.objects.select_for_update(skip_locked=True)
                .filter(status=ACTIVE, expires_at__lte=now)
                .order_by("expires_at")
                .values_list("pk", "status_reason")[:batch_size]
            )
            due = list(reasons_before)
            if not due:
                break
            Entitlement.objects.filter(pk__in=due).update(
                status=EXPIRED, status_reason="expires_at passed", updated_at=now
            )
            rows = list(Entitlement.objects.filter(pk__in=due))
            # One INSERT of audit entries per batch, in the batch's transaction.
            record_changes(
                Entitlement,
                (
                    (
                        row.pk,
                        str(row),
                        {
                            "status": (ACTIVE, row.status),
                            "status_reason": (reasons_before[row.pk], row.status_reason),
                        },
                    )
                    for row in rows
                ),
            )
            for row in rows:
                emit("expired", row)
            invalidate_rows(rows)
        total += len(due)
        if len(due) < batch_size:
            break
    return total
