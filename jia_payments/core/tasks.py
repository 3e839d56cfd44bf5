from celery import shared_task

from jia_payments.core.api.idempotency import idempotency_keys_prune


@shared_task(name="core.prune_idempotency_keys")
def prune_idempotency_keys() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): forget Idempotency-Keys older than IDEMPOTENCY_KEY_TTL_HOURS."""
    return idempotency_keys_prune()
