"""Celery tasks of the outbox: thin, they call the services."""

from celery import shared_task

from jia_payments.core.outbox.events import relay_request_taken
from jia_payments.core.outbox.services import outbox_prune_sent, outbox_relay


@shared_task(name="core.relay_events", ignore_result=True)
def relay_events() -> dict:
    """After a commit that recorded events (debounced), and every EVENTS_SWEEP_SECONDS from beat."""
    relay_request_taken()  # before the claim: a commit from now on enqueues a run of its own
    result = outbox_relay()
    return {"published": result.published, "failed": result.failed, "backing_off": result.backing_off}


@shared_task(name="core.prune_events", ignore_result=True)
def prune_events() -> int:
    """Hourly from beat: delete sent rows older than EVENTS_RETENTION_DAYS."""
    return outbox_prune_sent()
