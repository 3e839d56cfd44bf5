"""A task for the logging tests; a real worker loads it with `--include`."""

import structlog
from celery import shared_task

logger = structlog.get_logger(__name__)


@shared_task(name="core.tests.log_probe")
def log_probe(marker: str) -> str:
    logger.info("log_probe_ran", marker=marker)
    return marker
