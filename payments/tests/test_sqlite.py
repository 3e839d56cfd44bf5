"""`make run`'s embedded SQLite: a payment create with an Idempotency-Key writes its payment, its
audit entry and its outbox event (`core.inserts`: one statement on PostgreSQL, one INSERT each in a
transaction here) and the stored answer (a raw UPDATE binding what SQLite takes), and a retry
replays that answer; a write the database refuses leaves none of the three. The suite's other
tests run on PostgreSQL."""

import json

import pytest

from testsupport.sqlite import answers_on_sqlite

CREATE_ON_SQLITE = """
import json

from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError
from django.test import Client

from jia_payments.core.models import IdempotencyKey, OutboxEvent
from payments import services
from payments.models import Payment


web = Client(headers={"better-auth-token": "buyer_sqlite", "Idempotency-Key": "sqlite-create-1"})
body = {
    "amount": 1999, "currency": "USD", "payment_method": "bank_transfer",
    "customer_id": "buyer_sqlite", "metadata": {"source": "sqlite"},
}
answers = [web.post("/api/v1/payments/", body, content_type="application/json") for _ in range(2)]
refused = web.post(
    "/api/v1/payments/", {**body, "amount": 0}, content_type="application/json",
    headers={"Idempotency-Key": "sqlite-create-2"},
)
def counts():
    return [Payment.objects.count(), LogEntry.objects.count(), OutboxEvent.objects.count()]

listed = {
    "payments": [str(p) for p in Payment.objects.values_list("id", flat=True)],
    "events": list(OutboxEvent.objects.values("type", "aggregate_id", "envelope")),
    "audit": list(LogEntry.objects.values_list("object_pk", "action")),
}
checkout = {**body, "payment_method": "stripe_checkout", "external_payment_id": "cs_sqlite_once"}
services.payment_record(**checkout)
before = counts()
try:
    services.payment_record(**checkout)
    refused_write = "written"
except IntegrityError:
    refused_write = "refused"
print("ANSWERS " + json.dumps({
    **listed,
    "refused_write": {"outcome": refused_write, "rows_before": before, "rows_after": counts()},
    "answers": [
        {"status": a.status_code, "body": a.content.decode(), "replayed": a.get("Idempotent-Replayed")}
        for a in answers
    ],
    "refused": {"status": refused.status_code, "type": refused["Content-Type"]},
    "keys": list(IdempotencyKey.objects.values("key", "state", "response_status", "response_body")),
}, default=str))
"""  # fmt: skip


@pytest.fixture(scope="module")
def said(tmp_path_factory) -> dict:
    return answers_on_sqlite(CREATE_ON_SQLITE, tmp_path_factory.mktemp("sqlite"))


def test_a_create_writes_payment_event_audit_and_answer_and_a_retry_replays_it(said):
    first, again = said["answers"]
    assert (first["status"], first["replayed"]) == (201, None)
    assert (again["status"], again["replayed"]) == (201, "true")
    assert again["body"] == first["body"]
    payment = json.loads(first["body"])
    assert said["payments"] == [payment["id"]]
    [event] = said["events"]
    assert (event["type"], event["aggregate_id"]) == ("payment.created", payment["id"])
    assert event["envelope"]["data"] == payment
    assert said["audit"] == [[payment["id"], 0]]  # LogEntry.Action.CREATE
    [key] = said["keys"]  # the refused request's key was released: gone
    assert (key["key"], key["state"], key["response_status"]) == ("sqlite-create-1", "completed", 201)
    assert json.loads(key["response_body"]) == payment
    assert said["refused"] == {"status": 400, "type": "application/problem+json"}


def test_a_write_the_database_refuses_leaves_no_payment_no_entry_no_event(said):
    assert said["refused_write"] == {"outcome": "refused", "rows_before": [2, 2, 2], "rows_after": [2, 2, 2]}
