"""OpenTelemetry traces (jia_payments/core/ops/tracing.py), with the SDK's in-memory exporter:
one trace from a REST call through its INSERTs and outbox write to the Kafka message and the
consumer; an incoming traceparent is the parent; log lines name the trace; no secret, card number
or user id in any attribute; and nothing of it when tracing is not configured."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from jia_payments.core.models import OutboxEvent
from jia_payments.core.ops import tracing
from jia_payments.core.outbox.services import outbox_relay
from testsupport.logcapture import capture_logs, secret_values
from testsupport.processes import testing_database_url
from testsupport.tracing import all_attribute_values

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
PAYMENTS = "/api/v1/payments/"
CARD_PAYMENT = {
    "amount": 1999,
    "currency": "USD",
    "payment_method": "credit_card",
    "customer_id": "customer_trace_7",
    "order_id": "order_7",
}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def hex_span(span) -> str:
    return format(span.context.span_id, "016x")


def traceparent_of(span) -> str:
    return f"00-{hex_trace(span)}-{hex_span(span)}-{int(span.context.trace_flags):02x}"


def server_span(spans):
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    return server


def children_of(spans, parent) -> list:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def assert_no_secret(spans, token_issuer, *also: str) -> None:
    """No API token (its signature), Django or Stripe secret, test card number, nor any of `also`,
    in any span's name or attribute, its events' or its resource's."""
    text = "\n".join(all_attribute_values(spans))
    forbidden = secret_values(token_issuer.issued) | {token for token in token_issuer.issued} | set(also)
    leaked = [value[:8] + "..." for value in forbidden if value and value in text]
    assert not leaked, f"in span attributes: {leaked}"


# --- Off unless configured ---------------------------------------------------------------------


def test_configured_only_by_the_standard_variables():
    assert not tracing.configured({})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert tracing.configured({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.configured(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing.configured(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert not tracing.start("web", environ={})
    assert not tracing.active()


# redis-py imports the metrics SDK by itself when it is installed (its own, unused, observability);
# what tracing would load is the trace SDK, the exporters and the instrumentations.
OFF_PROBE = """
import sys
TRACING_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation")
import django
django.setup()
from django.conf import settings
from django.test import Client
from jia_payments.core.ops import tracing
from jia_payments.core.outbox.publishers import Message
assert tracing.start("web") is False
assert Client().get("/api/v1/plans/").status_code == 200
message = Message("k", {"id": "1"})
print(json.dumps({
    "otel_modules": sorted(m for m in sys.modules if m.startswith(TRACING_MODULES)),
    "middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
    "active": tracing.active(),
    "headers": [name for name, _ in message.headers()],
}))
"""


def test_off_nothing_of_opentelemetry_is_loaded_or_installed(django_db_blocker):
    """A process without OTEL_* serves a request with none of the tracing SDK, exporters or
    instrumentations imported, no middleware added, and messages with no trace header."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["DATABASE_URL"] = testing_database_url()
    probe = subprocess.run(
        [sys.executable, "-c", "import json\n" + OFF_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {
        "otel_modules": [],
        "middleware": [],
        "active": False,
        "headers": ["content-type"],
    }


# --- One trace from the REST call to the outbox row ------------------------------------------------


def test_a_payment_create_is_one_trace_with_its_inserts_and_outbox_write(
    traces, service_client, token_issuer
):
    response = service_client.post(PAYMENTS, CARD_PAYMENT, format="json")
    assert response.status_code == 201, response.content
    payment = response.json()

    spans = traces.get_finished_spans()
    server = server_span(spans)
    assert server.name == "POST api/v1/payments/"
    assert {hex_trace(s) for s in spans} == {hex_trace(server)}
    assert server.parent is None
    assert server.attributes["http.status_code"] == 201
    assert (server.attributes["payment.id"], server.attributes["payment.status"]) == (
        payment["id"],
        "pending",
    )

    statements = [
        s.attributes.get("db.statement", "") for s in spans if s.attributes.get("db.system") == "postgresql"
    ]
    # the payment, its audit entry and its event: one statement, inside the event's span
    (write,) = [st for st in statements if 'INSERT INTO "payments_payment"' in st]
    assert write.startswith("WITH ") and 'INSERT INTO "core_outboxevent"' in write
    (outbox,) = [s for s in spans if s.name == "outbox.record payment.created"]
    assert outbox.attributes["outbox.event_type"] == "payment.created"
    [outbox_insert] = children_of(spans, outbox)
    assert outbox_insert.attributes["db.statement"] == write
    # the card payment's PaymentIntent: the outgoing call to (the fake) Stripe, in the same trace
    stripe_calls = [s for s in spans if s.attributes.get("http.method") == "POST" and s.kind.name == "CLIENT"]
    assert [s.name for s in stripe_calls] == ["POST"]
    assert stripe_calls[0].attributes["http.url"].endswith("/v1/payment_intents")

    row = OutboxEvent.objects.get()
    assert row.trace_context == {"traceparent": traceparent_of(outbox)}
    assert outbox.attributes["cloudevents.event_id"] == str(row.event_id)
    assert_no_secret(spans, token_issuer, payment["client_secret"], "customer_trace_7", "svc_family_app")


def test_an_incoming_traceparent_is_the_parent_and_log_lines_name_the_span(traces, anon_client):
    with capture_logs() as logs:
        response = anon_client.get("/api/v1/plans/", HTTP_TRACEPARENT=TRACEPARENT)
    assert response.status_code == 200
    server = server_span(traces.get_finished_spans())
    assert hex_trace(server) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server.parent.is_remote
    (finished,) = logs.events("request_finished")
    assert (finished["trace_id"], finished["span_id"]) == (hex_trace(server), hex_span(server))


def test_log_lines_carry_no_trace_fields_outside_a_span(anon_client):
    with capture_logs() as logs:
        anon_client.get("/api/v1/plans/", HTTP_TRACEPARENT=TRACEPARENT)
    (finished,) = logs.events("request_finished")
    assert "trace_id" not in finished and "span_id" not in finished


def test_probes_and_metrics_are_not_traced(traces, anon_client):
    assert anon_client.get("/healthz").status_code == 200
    assert traces.get_finished_spans() == ()


# --- No user-identifying attribute unless asked for -------------------------------------------------


def test_user_ids_in_urls_become_placeholders_and_the_caller_is_not_recorded(
    traces, service_client, token_issuer
):
    response = service_client.get(
        "/api/v1/entitlements/check/", {"feature_code": "ai_assistant", "user_id": "user_secret_bob"}
    )
    assert response.status_code == 200, response.content
    server = server_span(traces.get_finished_spans())
    assert server.attributes["http.url"] == (
        "http://testserver/api/v1/entitlements/check/?feature_code=ai_assistant&user_id={user_id}"
    )
    assert (server.attributes["entitlement.has_access"], server.attributes["entitlement.reason"]) == (
        False,
        "no_entitlement",
    )
    assert "enduser.id" not in server.attributes
    assert server.attributes.get("net.peer.ip", "") == ""
    assert_no_secret(traces.get_finished_spans(), token_issuer, "user_secret_bob", "svc_family_app")

    response = service_client.delete(
        "/api/v1/families/00000000-0000-0000-0000-000000000001/members/user_x_9/"
    )
    server = [s for s in traces.get_finished_spans() if s.kind.name == "SERVER"][-1]
    assert server.attributes["http.url"] == (
        "http://testserver/api/v1/families/00000000-0000-0000-0000-000000000001/members/{user_id}/"
    )


def test_with_otel_record_user_id_the_caller_and_urls_are_recorded(traces, service_client, monkeypatch):
    monkeypatch.setenv("OTEL_RECORD_USER_ID", "true")
    service_client.get("/api/v1/entitlements/check/", {"feature_code": "ai_assistant", "user_id": "user_bob"})
    server = server_span(traces.get_finished_spans())
    assert server.attributes["enduser.id"] == "svc_family_app"
    assert server.attributes["http.url"].endswith("user_id=user_bob")


# --- The outbox: the relay's publish, the Kafka message, the consumer ------------------------------


def test_the_kafka_message_carries_the_trace_and_consume_events_continues_it(
    traces, kafka_events, service_client, token_issuer
):
    settings.EVENTS_PROVIDER = "outbox"  # kept in the outbox: the relay runs below, as beat's sweep would
    response = service_client.post(
        PAYMENTS, {**CARD_PAYMENT, "payment_method": "bank_transfer"}, format="json"
    )
    assert response.status_code == 201, response.content
    (recorded,) = [s for s in traces.get_finished_spans() if s.name == "outbox.record payment.created"]
    traceparent = traceparent_of(recorded)

    settings.EVENTS_PROVIDER = "kafka"
    traces.clear()
    assert outbox_relay().published == 1
    (publish,) = [s for s in traces.get_finished_spans() if s.kind.name == "PRODUCER"]
    assert publish.name == f"send {kafka_events.topic}"
    assert hex_trace(publish) != hex_trace(recorded)  # the relay's own trace, linked to the event's
    assert [
        (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
        for link in publish.links
    ] == [(hex_trace(recorded), hex_span(recorded))]
    assert publish.attributes["messaging.batch.message_count"] == 1
    assert publish.attributes["outbox.event_types"] == ("payment.created",)

    [(key, envelope, headers)] = kafka_events.read(min_messages=1)
    assert headers == {
        "content-type": b"application/cloudevents+json; charset=UTF-8",
        "traceparent": traceparent.encode(),
    }
    assert envelope["traceparent"] == traceparent  # CloudEvents' distributed tracing extension
    assert key == response.json()["id"]

    traces.clear()
    out = StringIO()
    call_command("consume_events", brokers=kafka_events.broker.bootstrap_servers, topic=kafka_events.topic,
                 timeout=20, limit=1, stdout=out)  # fmt: skip
    assert json.loads(out.getvalue())["event"]["id"] == envelope["id"]
    (consumed,) = [s for s in traces.get_finished_spans() if s.kind.name == "CONSUMER"]
    assert consumed.name == f"process {kafka_events.topic}"
    assert hex_trace(consumed) == hex_trace(recorded)
    assert format(consumed.parent.span_id, "016x") == hex_span(recorded)
    assert consumed.attributes["cloudevents.event_type"] == "payment.created"
    assert_no_secret(traces.get_finished_spans(), token_issuer, "customer_trace_7")


def test_untraced_rows_publish_as_before(kafka_events):
    from testsupport.events import assert_cloudevent, record

    event = record()
    [(_key, envelope, headers)] = kafka_events.read(min_messages=1)
    assert headers == {"content-type": b"application/cloudevents+json; charset=UTF-8"}
    assert_cloudevent(envelope, type="payment.status.updated", subject=event.subject)
    assert OutboxEvent.objects.get().trace_context is None
