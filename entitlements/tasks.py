"""Celery tasks of the entitlement engine: thin wrappers around services."""

from celery import shared_task

from entitlements import services


@shared_task(name="entitlements.expire_due", ignore_result=True)
def expire_due_entitlements() -> int:
    """Beat, every ENTITLEMENTS_SWEEP_SECONDS: mark rows past `expires_at` expired, in batches."""
    return services.entitlements_expire_due()


@shared_task(
    name="entitlements.sync_plan",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def sync_plan_entitlements(plan_id: str) -> dict:
    """A plan's features or limits changed (admin): bring its granted rows in line."""
    return services.plan_entitlements_sync(plan_id=plan_id)
