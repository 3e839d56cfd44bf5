"""Celery tasks of payments: thin, each calls a service and retries."""

import logging
import random

from celery import shared_task
from django.conf import settings

from payments.refunds import refunds_retry_pending
from payments.stripe.events import stripe_event_process, stripe_event_record_failure, stripe_events_reconcile
from payments.subscriptions import LeftToStaff, subscription_duplicate_settle, subscriptions_settle_duplicates

logger = logging.getLogger(__name__)


def retry_countdown(retries: int) -> float:
    """Exponential backoff with full jitter, capped: base * 2**retries at most."""
    ceiling = min(
        settings.STRIPE_EVENT_RETRY_BACKOFF_MAX_SECONDS,
        settings.STRIPE_EVENT_RETRY_BACKOFF_SECONDS * 2**retries,
    )
    return random.uniform(ceiling / 2, ceiling)


@shared_task(bind=True, max_retries=None, acks_late=True)
def process_stripe_event(self, event_id: str) -> str:
    try:
        return stripe_event_process(event_id=event_id)
    except Exception as error:
        final = self.request.retries >= settings.STRIPE_EVENT_MAX_RETRIES
        stripe_event_record_failure(event_id=event_id, error=error, final=final)
        if final:
            return "failed"
        raise self.retry(exc=error, countdown=retry_countdown(self.request.retries)) from error


@shared_task
def reconcile_stripe_events() -> dict:
    result = stripe_events_reconcile()
    result["refunds_settled"] = refunds_retry_pending()
    result["duplicates_settled"] = subscriptions_settle_duplicates()
    return result


@shared_task(bind=True, max_retries=None, acks_late=True)
def settle_duplicate_subscription(self, subscription_id: str) -> str:
    """Cancel a duplicate subscription at Stripe and refund it (reconciliation catches it if
    every try fails)."""
    try:
        return subscription_duplicate_settle(subscription_id=subscription_id).status
    except LeftToStaff:
        return "left to staff"
    except Exception as error:
        if self.request.retries >= settings.STRIPE_EVENT_MAX_RETRIES:
            logger.error("duplicate subscription %s not settled: %r", subscription_id, error)
            return "failed"
        raise self.retry(exc=error, countdown=retry_countdown(self.request.retries)) from error
