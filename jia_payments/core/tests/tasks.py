"""Tasks for the logging and fault tests; a real worker loads them with `--include`."""

import time
import uuid

import structlog
from celery import shared_task
from django.db import IntegrityError, transaction

logger = structlog.get_logger(__name__)


@shared_task(name="core.tests.log_probe")
def log_probe(marker: str) -> str:
    logger.info("log_probe_ran", marker=marker)
    return marker


@shared_task(name="core.tests.slow_effect")
def slow_effect(marker: str, seconds: float) -> str:
    """Takes `seconds`, then makes its one effect: an outbox row whose event id is derived from
    `marker` (unique), so a second run changes nothing, as every task of the project must."""
    from jia_payments.core.models import OutboxEvent

    logger.info("slow_effect_started", marker=marker)
    time.sleep(seconds)
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, marker)
    try:
        with transaction.atomic():
            OutboxEvent.objects.create(
                event_id=event_id, type="test.effect", aggregate_id=marker, subject=marker,
                envelope={}, status=OutboxEvent.Status.SENT,
            )  # fmt: skip
    except IntegrityError:
        logger.info("slow_effect_already_made", marker=marker)
    logger.info("slow_effect_done", marker=marker)
    return marker
