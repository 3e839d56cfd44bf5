"""GET /metrics: who may read it, and counts that go up by exactly what a scripted sequence did."""

import time
import uuid

import pytest
from celery import shared_task
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from entitlements import services as entitlement_services
from entitlements.tests.factories import plan_with
from jia_payments.core.models import OutboxEvent
from payments.models import StripeEvent
from payments.stripe.events import stripe_event_receive, stripe_event_record_failure
from testsupport.problems import assert_problem

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "m" * 24


def scrape(client=None, token: str = TOKEN) -> dict:
    """{(sample name, sorted label pairs): value} of one scrape."""
    client = client or Client()
    with override_settings(METRICS_TOKEN=token):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@shared_task(name="core.tests.metrics_boom")
def boom():
    raise RuntimeError("boom")


# --- who may read it ---------------------------------------------------------------------------


def test_production_without_a_token_serves_no_metrics():
    with override_settings(METRICS_TOKEN="", DEBUG=False):
        assert_problem(Client().get("/metrics"), 404, "not_found")


def test_a_debug_server_without_a_token_serves_them():
    with override_settings(METRICS_TOKEN="", DEBUG=True):
        response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE jia_payments_payments_total counter" in response.content


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_with_a_token_only_its_bearer_reads_them(header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    with override_settings(METRICS_TOKEN=TOKEN):
        response = Client().get("/metrics", **extra)
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"jia_payments" not in response.content
        assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_answered_for_any_host_and_over_plain_http_like_the_probes():
    with override_settings(METRICS_TOKEN=TOKEN, SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["payments.jia.app"]):
        response = Client(HTTP_HOST="10.1.2.3:8000").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200


# --- a scripted sequence --------------------------------------------------------------------


def test_counts_follow_a_scripted_sequence_of_api_calls(
    service_client, api_client_for, django_capture_on_commit_callbacks
):
    def committed():
        return django_capture_on_commit_callbacks(execute=True)

    user = f"user_metrics_{uuid.uuid4().hex[:8]}"  # no cache entry from another test
    plan = plan_with(["metrics_feature"], id=f"plan_{uuid.uuid4().hex[:8]}")
    with committed():
        entitlement_services.entitlements_grant_plan(
            user_id=user, plan=plan, subscription_id="sub_m", expires_at=None
        )
    before = scrape()

    # Payments: three created in NOK (bank transfers: no Stripe), one completes, two fail.
    created = []
    for order in ("o1", "o2", "o3"):
        body = {"amount": 500, "currency": "NOK", "payment_method": "bank_transfer", "customer_id": "c_m"}
        with committed():
            response = service_client.post("/api/v1/payments/", {**body, "order_id": order}, format="json")
        assert response.status_code == 201, response.content
        created.append(response.json()["id"])
    moves = [
        {"status": "completed"},
        {"status": "failed", "failure_reason": "insufficient_funds"},
        {"status": "failed", "failure_reason": "The customer's bank said no."},
    ]
    for payment_id, move in zip(created, moves, strict=True):
        with committed():
            response = service_client.post(f"/api/v1/payments/{payment_id}/status/", move, format="json")
        assert response.status_code == 200, response.content
    # An illegal move changes nothing and counts nothing.
    response = service_client.post(
        f"/api/v1/payments/{created[0]}/status/", {"status": "failed"}, format="json"
    )
    assert response.status_code == 400

    # Entitlement checks: a miss, then hits; one granted, one without an entitlement, a batch of 2.
    check = "/api/v1/entitlements/check/"
    client = api_client_for(user)
    assert client.get(check, {"feature_code": "metrics_feature"}).json()["has_access"] is True
    assert client.get(check, {"feature_code": "other_feature"}).json()["reason"] == "no_entitlement"
    batch = client.post(check, {"feature_codes": ["metrics_feature", "x_feature"]}, format="json")
    assert batch.status_code == 200

    # Stripe events: one new, the same again, one of a type we do not handle; processed eagerly.
    event_id = f"evt_metrics_{uuid.uuid4().hex[:12]}"
    expired = {
        "id": event_id,
        "type": "checkout.session.expired",
        "created": int(time.time()),
        "data": {"object": {"id": "cs_unknown", "client_reference_id": None}},
    }
    with committed():
        assert stripe_event_receive(event=expired, source=StripeEvent.Source.WEBHOOK) is True
    with committed():
        assert stripe_event_receive(event=expired, source=StripeEvent.Source.WEBHOOK) is False
        unhandled = {**expired, "id": f"{event_id}_c", "type": "customer.created"}
        assert stripe_event_receive(event=unhandled, source=StripeEvent.Source.WEBHOOK) is True
    assert StripeEvent.objects.get(pk=event_id).status == StripeEvent.Status.PROCESSED
    stripe_event_record_failure(event_id=f"{event_id}_c", error=ValueError("x"), final=False)

    # A Celery task that raises (as a worker runs it: the error stays in the task's result).
    assert boom.apply(throw=False).failed()

    after = scrape()
    d = lambda name, **labels: delta(before, after, name, **labels)  # noqa: E731

    assert d("jia_payments_payments_total", status="pending", currency="NOK") == 3
    assert d("jia_payments_payments_total", status="completed", currency="NOK") == 1
    assert d("jia_payments_payments_total", status="failed", currency="NOK") == 2
    assert d("jia_payments_payment_failures_total", reason="insufficient_funds") == 1
    assert d("jia_payments_payment_failures_total", reason="other") == 1

    assert d("jia_payments_entitlement_checks_total", result="active") == 2
    assert d("jia_payments_entitlement_checks_total", result="no_entitlement") == 2
    assert d("jia_payments_entitlement_cache_lookups_total", result="miss") == 1
    assert d("jia_payments_entitlement_cache_lookups_total", result="hit") == 2

    expired_type = "checkout.session.expired"
    assert d("jia_payments_stripe_events_received_total", type=expired_type, outcome="new") == 1
    assert d("jia_payments_stripe_events_received_total", type=expired_type, outcome="duplicate") == 1
    assert d("jia_payments_stripe_events_received_total", type="unhandled", outcome="ignored") == 1
    assert d("jia_payments_stripe_events_processed_total", type=expired_type, outcome="processed") == 1
    assert d("jia_payments_stripe_events_processed_total", type="unhandled", outcome="retried") == 1
    assert d("jia_payments_stripe_event_processing_seconds_count", type=expired_type) == 1
    assert d("jia_payments_stripe_event_lag_seconds_count", type=expired_type) == 1

    assert d("jia_payments_celery_task_failures_total", task="core.tests.metrics_boom") == 1

    # django-prometheus: requests by view and status, latency by view and status, database calls.
    assert (
        d(
            "django_http_responses_total_by_status_view_method_total",
            status="201",
            view="payment-list",
            method="POST",
        )
        == 3
    )
    latency = "django_http_requests_latency_seconds_by_view_status_count"
    assert d(latency, view="payment-status", status="200") == 3
    assert d(latency, view="payment-status", status="400") == 1
    assert d("django_db_execute_total", alias="default", vendor="postgresql") > 0

    # The outbox gauges are read from the database at scrape time.
    pending = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING)
    assert value(after, "jia_payments_outbox_pending_events") == pending.count() > 0
    oldest = pending.order_by("id").first().created_at.timestamp()
    assert value(after, "jia_payments_outbox_oldest_pending_age_seconds") == pytest.approx(
        time.time() - oldest, abs=5
    )


def test_no_pending_outbox_rows_is_zero_and_zero_age():
    OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).delete()
    samples = scrape()
    assert value(samples, "jia_payments_outbox_pending_events") == 0
    assert value(samples, "jia_payments_outbox_oldest_pending_age_seconds") == 0


def test_the_celery_worker_serves_its_own_metrics_under_the_same_token():
    import requests

    from jia_payments.core.ops.metrics import serve_worker_metrics

    with override_settings(METRICS_TOKEN=TOKEN):
        server = serve_worker_metrics(0, "127.0.0.1")
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            assert requests.get(url, timeout=10).status_code == 401
            response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        finally:
            server.shutdown()
            server.server_close()
    assert response.status_code == 200
    assert "# TYPE jia_payments_celery_task_failures_total counter" in response.text


@pytest.mark.parametrize(
    ("token", "authorization"),
    [(TOKEN, None), (TOKEN, "Bearer not-the-token"), (TOKEN, "Basic x"), ("", None)],
)
def test_the_worker_endpoint_refuses_in_the_problem_details_the_web_endpoint_answers(token, authorization):
    import requests

    from jia_payments.core.ops.metrics import serve_worker_metrics

    headers = {"Authorization": authorization} if authorization else {}
    with override_settings(METRICS_TOKEN=token, DEBUG=False):
        web = Client().get("/metrics", headers=headers)
        server = serve_worker_metrics(0, "127.0.0.1")
        try:
            worker = requests.get(
                f"http://127.0.0.1:{server.server_port}/metrics", headers=headers, timeout=10
            )
        finally:
            server.shutdown()
            server.server_close()
    status, code = (401, "not_authenticated") if token else (404, "not_found")
    assert worker.json() == assert_problem(web, status, code)
    assert worker.status_code == status
    assert worker.headers["Content-Type"] == "application/problem+json"
    assert worker.headers.get("WWW-Authenticate") == web.get("WWW-Authenticate")


def test_made_up_request_methods_do_not_make_new_label_values():
    """An attacker sending random methods must not grow the series without bound: every metric
    labelled by method (the latency histogram included) puts them under one value."""
    client = Client()
    bogus = [f"BOGUS{uuid.uuid4().hex[:6].upper()}" for _ in range(3)]
    for method in bogus:
        client.generic(method, "/api/v1/plans/")
        client.generic(method, "/no-such-page/")
    methods = {
        dict(labels)["method"]
        for (name, labels) in scrape()
        if name.startswith("django_http_") and "method" in dict(labels)
    }
    assert not methods & set(bogus)
    assert methods <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "CONNECT",
        "<invalid method>",
    }
    assert "<invalid method>" in methods
