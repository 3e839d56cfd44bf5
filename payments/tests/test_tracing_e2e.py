"""One trace from a signed Stripe webhook through the Celery task that processes it (a real worker
process, exporting over OTLP/HTTP to a receiver this test runs) to the entitlements it grants."""

import json
import os
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.management import call_command

from entitlements.models import Entitlement
from jia_payments.celery import app as celery_app
from jia_payments.core.api.auth import Principal
from payments.checkout import checkout_session_create
from payments.models import StripeEvent
from payments.stripe.endpoint import webhook_endpoint_ensure
from payments.tasks import process_stripe_event
from testsupport.celery_worker import CeleryWorker
from testsupport.localstripe import API_KEY, WEBHOOK_SECRET, signature_header
from testsupport.logcapture import secret_values
from testsupport.tracing import OtlpReceiver, all_attribute_values
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUEUE = "traced-e2e"  # this module's worker only: the session's untraced worker never takes these
TASK = "payments.tasks.process_stripe_event"


@pytest.fixture(scope="module")
def otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_worker(django_db_setup, localstripe, otlp_receiver, tmp_path_factory):
    test_database = settings.DATABASES["default"]["NAME"]
    database_url = urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{test_database}").geturl()
    worker = CeleryWorker(
        app="testsupport.celery_app",
        env={
            "DATABASE_URL": database_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "STRIPE_SECRET": API_KEY,
            "STRIPE_API_BASE": localstripe.url,
            **otlp_receiver.environ(service_name="jia-payments-worker"),
        },
        concurrency=1,
        queues=QUEUE,
        log_path=tmp_path_factory.getbasetemp() / "celery-worker-traced.log",
    )
    with worker:
        yield worker


@pytest.fixture
def to_traced_worker(monkeypatch):
    """The webhook's task goes over Redis to this module's worker."""
    monkeypatch.setattr(process_stripe_event, "queue", QUEUE, raising=False)
    monkeypatch.setattr(process_stripe_event, "_exec_options", None)
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


def _completed_checkout_event(localstripe) -> tuple[str, dict]:
    """A paid checkout's `checkout.session.completed`, made by (the fake) Stripe and not sent."""
    localstripe.set_delivery(paused=True)
    try:
        session = checkout_session_create(
            principal=Principal(user_id="user_traced", role=Principal.USER),
            plan_id="premium_monthly",
            country="US",
            success_url="https://app.example/ok",
            cancel_url="https://app.example/cancel",
        )
        localstripe.complete_checkout_session(session.stripe_session_id)
        [event] = [
            e
            for e in localstripe.events(type="checkout.session.completed")
            if e["data"]["object"]["id"] == session.stripe_session_id
        ]
        return session.stripe_session_id, event
    finally:
        localstripe.set_delivery(paused=False)


def test_a_signed_webhook_the_worker_task_and_the_grant_are_one_trace(
    traces, traced_worker, otlp_receiver, to_traced_worker, localstripe, client, token_issuer
):
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    localstripe.flush()
    endpoint, _ = webhook_endpoint_ensure(base_url="http://testserver")
    session_id, event = _completed_checkout_event(localstripe)
    traces.clear()

    body = json.dumps(event).encode()
    response = client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(body, WEBHOOK_SECRET),
    )
    assert response.status_code == 200, response.content

    here = traces.get_finished_spans()
    (webhook,) = [s for s in here if s.kind.name == "SERVER"]
    trace_id = format(webhook.context.trace_id, "032x")
    assert webhook.name == "POST stripe/webhook/<uuid:uuid>/"
    assert str(endpoint.djstripe_uuid) not in webhook.attributes["http.url"]  # the URL's secret part
    assert (webhook.attributes["stripe.event.type"], webhook.attributes["stripe.event.id"]) == (
        "checkout.session.completed",
        event["id"],
    )
    (enqueued,) = [s for s in here if s.name == f"apply_async/{TASK}"]
    assert format(enqueued.context.trace_id, "032x") == trace_id

    wait_for(
        lambda: StripeEvent.objects.filter(pk=event["id"], status=StripeEvent.Status.PROCESSED).exists(),
        what="the event processed by the traced worker",
    )
    assert Entitlement.objects.filter(user_id="user_traced", status="active").count() == 9

    def worker_spans():
        spans = [s for s in otlp_receiver.spans() if s.trace_id == trace_id]
        done = any(s.name == f"run/{TASK}" for s in spans) and any(
            s.name == "outbox.record entitlement.created" for s in spans
        )
        return spans if done else None

    there = wait_for(worker_spans, timeout=60, what="the worker's spans at the OTLP receiver")
    (run,) = [s for s in there if s.name == f"run/{TASK}"]
    assert run.parent_span_id == format(enqueued.context.span_id, "016x")
    assert run.resource["service.name"] == "jia-payments-worker"
    assert run.resource["jia.role"] == "worker"
    assert (run.attributes["stripe.event.type"], run.attributes["stripe.event.id"]) == (
        "checkout.session.completed",
        event["id"],
    )
    grants = [s for s in there if s.name == "outbox.record entitlement.created"]
    assert len(grants) == 9
    assert any(
        s.attributes.get("http.url", "").endswith("/v1/checkout/sessions/" + session_id) for s in there
    )
    statements = [s.attributes.get("db.statement", "") for s in there]
    assert any(st.startswith('INSERT INTO "entitlements_entitlement"') for st in statements)

    text = "\n".join(all_attribute_values(here)) + "\n".join(
        f"{s.name} {s.attributes} {s.resource}" for s in there
    )
    forbidden = secret_values(token_issuer.issued) | {WEBHOOK_SECRET, API_KEY, "user_traced"}
    assert not [value[:8] for value in forbidden if value in text]
