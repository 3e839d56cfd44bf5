"""End-to-end fixtures: localstripe sends signed webhooks over HTTP to a live server, and a real
Celery worker process on Redis processes them against the test database."""

import os
from urllib.parse import urlparse

import pytest
import redis
import requests
from django.conf import settings
from django.core.management import call_command

from jia_payments.celery import app as celery_app
from payments.models import StripeEvent
from payments.webhook_endpoint import webhook_endpoint_ensure
from testsupport.celery_worker import CeleryWorker
from testsupport.localstripe import API_KEY, WEBHOOK_SECRET
from testsupport.waiting import wait_for


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


class StripeE2E:
    """What an end-to-end test drives: the live server's API, localstripe, the webhook URL."""

    def __init__(self, *, base_url: str, webhook_url: str, localstripe, token_issuer, worker):
        self.base_url = base_url
        self.webhook_url = webhook_url
        self.localstripe = localstripe
        self.token_issuer = token_issuer
        self.worker = worker

    def api(self, user_id: str, role: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers["better-auth-token"] = self.token_issuer.token(user_id, role=role)
        return session

    def url(self, path: str) -> str:
        return self.base_url + path

    def post_webhook(self, body: bytes, headers: dict) -> requests.Response:
        return requests.post(self.webhook_url, data=body, headers=headers, timeout=30)

    def stripe_event(self, event_type: str, object_id: str) -> dict:
        """The event Stripe (localstripe) made of `event_type` about `object_id`."""
        events = self.localstripe.events(type=event_type)
        matching = [e for e in events if e["data"]["object"]["id"] == object_id]
        assert len(matching) == 1, (event_type, object_id, len(matching))
        return matching[0]

    def wait_processed(self, *event_ids: str) -> None:
        wait_for(
            lambda: (
                StripeEvent.objects.filter(pk__in=event_ids, status=StripeEvent.Status.PROCESSED).count()
                == len(set(event_ids))
            ),
            what=f"events {event_ids} processed",
        )

    def wait_settled(self) -> None:
        """No webhook in flight and no stored event waiting for the worker."""
        wait_for(lambda: self.localstripe.deliveries_in_flight() == 0, what="webhooks delivered")
        wait_for(
            lambda: not StripeEvent.objects.filter(status=StripeEvent.Status.PENDING).exists(),
            what="stripe events processed",
        )


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
