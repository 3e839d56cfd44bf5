"""End-to-end fixtures: localstripe sends signed webhooks over HTTP to a live server, and a real
Celery worker process on Redis processes them against the test database."""

import os
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.core.management import call_command

from jia_payments.celery import app as celery_app
from payments.stripe.endpoint import webhook_endpoint_ensure
from payments.tests.stripe_e2e import StripeE2E
from testsupport.celery_worker import CeleryWorker
from testsupport.localstripe import API_KEY, WEBHOOK_SECRET


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, localstripe, tmp_path_factory):
    """One worker process for the session, on this run's Redis db and the test database."""
    test_database = settings.DATABASES["default"]["NAME"]
    database_url = urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{test_database}").geturl()
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # no task left over from another run
    worker = CeleryWorker(
        app="testsupport.celery_app",  # the production app, see testsupport/celery_app.py
        env={
            "DATABASE_URL": database_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "STRIPE_SECRET": API_KEY,
            "STRIPE_API_BASE": localstripe.url,
            "STRIPE_EVENT_RETRY_BACKOFF_SECONDS": "0.2",
            "STRIPE_EVENT_MAX_RETRIES": "3",
        },
        concurrency=2,
        log_path=tmp_path_factory.getbasetemp() / "celery-worker.log",
    )
    with worker:
        yield worker


@pytest.fixture
def stripe_e2e(transactional_db, live_server, celery_worker, localstripe, token_issuer):
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    localstripe.flush()  # Stripe's side starts empty too
    endpoint, _ = webhook_endpoint_ensure(base_url=live_server.url)
    webhook_url = f"{live_server.url}/stripe/webhook/{endpoint.djstripe_uuid}/"
    localstripe.configure_webhook(webhook_url, WEBHOOK_SECRET, name="e2e")
    localstripe.set_delivery(paused=False, delay=0.05)
    celery_app.conf.task_always_eager = False
    e2e = StripeE2E(
        base_url=live_server.url,
        webhook_url=webhook_url,
        localstripe=localstripe,
        token_issuer=token_issuer,
        worker=celery_worker,
    )
    try:
        yield e2e
        e2e.wait_settled()  # nothing of this test may reach the next one's database
    finally:
        localstripe.configure_webhook(webhook_url, WEBHOOK_SECRET, name="e2e", events=[])
        localstripe.set_delivery(paused=False)
        celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
