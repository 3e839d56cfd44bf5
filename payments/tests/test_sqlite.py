"""`make run`'s embedded SQLite: a payment create with an Idempotency-Key writes its payment, its
outbox event (`record_event`: raw SQL on PostgreSQL, a model save here), its audit entry and the
stored answer (a raw UPDATE binding what SQLite takes), and a retry replays that answer. The
suite's other tests run on PostgreSQL."""

import json

from testsupport.sqlite import answers_on_sqlite

CREATE_ON_SQLITE = """
import json

from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from jia_payments.core.models import IdempotencyKey, OutboxEvent
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
print("ANSWERS " + json.dumps({
    "answers": [
        {"status": a.status_code, "body": a.content.decode(), "replayed": a.get("Idempotent-Replayed")}
        for a in answers
    ],
    "refused": {"status": refused.status_code, "type": refused["Content-Type"]},
    "payments": [str(p) for p in Payment.objects.values_list("id", flat=True)],
    "events": list(OutboxEvent.objects.values("type", "aggregate_id", "envelope")),
    "audit": list(LogEntry.objects.values_list("object_pk", "action")),
    "keys": list(IdempotencyKey.objects.values("key", "state", "response_status", "response_body")),
}, default=str))
"""  # fmt: skip


def _answers_on_sqlite(tmp_path) -> dict:
    return answers_on_sqlite(CREATE_ON_SQLITE, tmp_path)


def test_a_create_writes_payment_event_audit_and_answer_and_a_retry_replays_it(tmp_path):
    said = _answers_on_sqlite(tmp_path)
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
