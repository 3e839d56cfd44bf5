"""A payment create's one write statement (payment, audit entry, event): each row exactly what a
model save with auditlog's signals and `record_event` wrote, and a refused write leaves none."""

import pytest
import structlog
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIRequestFactory

from jia_payments.core.api.auth import Principal
from jia_payments.core.api.timestamps import iso_utc
from jia_payments.core.audit import trail
from jia_payments.core.models import IdempotencyKey, OutboxEvent
from payments import services
from payments.models import Payment

PAYMENTS = "/api/v1/payments/"
SERVICE = Principal(user_id="svc_family_app", role=Principal.SERVICE)
FIELDS = {
    "amount": 1999,
    "currency": "USD",
    "payment_method": "bank_transfer",
    "customer_id": "customer_123",
    "order_id": "order_123",
    "description": "Premium, one month",
    "metadata": {"source": "ios", "nested": {"n": 1}},
}
# Per payment: its own id and times (the rest of the entry must be the same both ways).
OWN = ("id", "created_at")


@pytest.fixture
def in_a_request():
    """An API request being served (what AuditMiddleware and the request log bind), with a reason."""

    def serve(user):
        request = APIRequestFactory().post("/api/v1/payments/", REMOTE_ADDR="10.1.2.3")
        if isinstance(user, Principal):
            request.user = user
        else:
            request._cached_user = user
        token = trail._request.set(request)
        bound = structlog.contextvars.bind_contextvars(request_id="req-create-1")
        return token, bound

    tokens = []
    yield lambda user: tokens.append(serve(user))
    for token, bound in tokens:
        structlog.contextvars.reset_contextvars(**bound)
        trail._request.reset(token)


def _entry_row(payment: Payment) -> dict:
    (row,) = LogEntry.objects.filter(object_pk=str(payment.pk)).values()
    for name in ("id", "object_pk", "timestamp"):
        row.pop(name)
    own = {name: row["changes"].pop(name) for name in OWN}
    assert own["id"] == ["None", str(payment.pk)]
    assert own["created_at"][1].startswith(payment.created_at.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return row


def _saved_by_the_orm() -> Payment:
    """The write as it was: a model save, auditlog's post_save receiver writing the entry."""
    payment = Payment(**FIELDS)
    payment.save(force_insert=True)
    return payment


@pytest.mark.django_db
@pytest.mark.parametrize("caller", ["service", "admin"])
def test_the_audit_entry_is_the_one_auditlog_writes_on_a_save(in_a_request, caller):
    user = SERVICE
    if caller == "admin":
        user = get_user_model().objects.create_user("sue", "sue@example.com", is_staff=True)
    in_a_request(user)
    with trail.audit_context(reason="asked by support"):
        saved = _saved_by_the_orm()
        created = services.payment_create(principal=SERVICE, **FIELDS).payment
    expected = _entry_row(saved)
    assert _entry_row(created) == expected
    assert expected["cid"] == "req-create-1" and expected["remote_addr"] == "10.1.2.3"
    assert expected["additional_data"]["reason"] == "asked by support"
    assert expected["changes"]["amount"] == ["None", "1999"]
    assert "updated_at" not in expected["changes"]
    if caller == "admin":
        assert (expected["actor_id"], expected["actor_email"]) == (user.pk, "sue@example.com")
    else:
        assert (expected["actor_id"], expected["actor_email"]) == (None, "service:svc_family_app")


@pytest.mark.django_db
def test_the_event_is_the_envelope_record_event_writes(settings):
    payment = services.payment_create(principal=SERVICE, **FIELDS).payment
    row = OutboxEvent.objects.get()
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.created_at, stored.updated_at) == (payment.created_at, payment.updated_at)
    assert (row.type, row.aggregate_id, row.subject, row.status, row.attempts, row.last_error) == (
        "payment.created",
        str(payment.pk),
        f"payments/{payment.pk}",
        "pending",
        0,
        "",
    )
    assert row.trace_context is None
    assert row.envelope == {
        "specversion": "1.0",
        "id": str(row.event_id),
        "source": settings.EVENTS_SOURCE,
        "type": "payment.created",
        "subject": f"payments/{payment.pk}",
        "time": iso_utc(row.created_at),
        "datacontenttype": "application/json",
        "data": services.payment_data(stored),
    }


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_relay_is_asked_for_once_the_write_is_in(settings):
    """EVENTS_PROVIDER=log with eager Celery: the relay runs as soon as the write committed and
    finds the event."""
    settings.EVENTS_PROVIDER = "log"
    services.payment_create(principal=SERVICE, **FIELDS)
    assert list(OutboxEvent.objects.values_list("type", "status")) == [("payment.created", "sent")]


def _refused_twice():
    """A second payment under the first's Stripe id: the database's unique constraint refuses it."""
    services.payment_record(**FIELDS, external_payment_id="pi_once")
    with pytest.raises(IntegrityError):
        services.payment_record(**FIELDS, external_payment_id="pi_once")


def _rows() -> tuple[int, int, int]:
    return Payment.objects.count(), LogEntry.objects.count(), OutboxEvent.objects.count()


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_leaves_no_payment_no_entry_no_event():
    _refused_twice()
    assert _rows() == (1, 1, 1)


@pytest.mark.django_db
def test_a_refused_write_inside_a_transaction_leaves_it_usable():
    with transaction.atomic():
        _refused_twice()
        assert _rows() == (1, 1, 1)  # the caller's transaction goes on


@pytest.mark.django_db
def test_a_retry_under_the_same_id_answers_the_payment_made_and_writes_nothing(
    django_capture_on_commit_callbacks,
):
    first = services.payment_create(principal=SERVICE, payment_id=None, **FIELDS).payment
    again = services.payment_create(principal=SERVICE, payment_id=first.pk, **FIELDS).payment
    assert (again.pk, again.created_at) == (first.pk, first.created_at)
    assert _rows() == (1, 1, 1)


@pytest.fixture
def outbox_refused():
    """The database refuses every outbox row (a trigger): a write that fails in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_outbox() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'outbox refused'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_outbox BEFORE INSERT ON core_outboxevent "
            "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_outbox ON core_outboxevent")
        cursor.execute("DROP FUNCTION refuse_outbox()")


@pytest.mark.django_db(transaction=True)
def test_a_write_the_database_refuses_answers_500_leaves_nothing_and_releases_the_key(
    service_client, outbox_refused
):
    response = service_client.post(
        "/api/v1/payments/", FIELDS, format="json", HTTP_IDEMPOTENCY_KEY="refused-by-the-database"
    )
    assert (response.status_code, response["Content-Type"]) == (500, "application/problem+json")
    assert _rows() == (0, 0, 0)
    assert list(IdempotencyKey.objects.values_list("key", "state")) == [
        ("refused-by-the-database", "released")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("description", ["Premium, one month", "Prämie\u2028line two", ""])
def test_the_answer_and_the_stored_answer_are_drf_s_bytes(service_client, description):
    from rest_framework.renderers import JSONRenderer

    key = f"answer-{len(description)}"
    response = service_client.post(
        "/api/v1/payments/", {**FIELDS, "description": description}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert (response.status_code, response["Content-Type"]) == (201, "application/json")
    drf = JSONRenderer().render(response.json())  # the same data (its metadata's order as sent)
    assert response.content == drf
    assert response.json() == services.payment_data(Payment.objects.get())
    assert IdempotencyKey.objects.get(key=key).response_body.encode() == drf
    again = service_client.post(
        "/api/v1/payments/", {**FIELDS, "description": description}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert (again.status_code, again["Idempotent-Replayed"], again.content) == (201, "true", drf)


@pytest.mark.django_db(transaction=True)
def test_a_create_cut_off_after_its_write_has_its_answer_stored_with_it(service_client, monkeypatch):
    """The stored answer is written by the payment's own statement: a request that dies after it
    (before answering) leaves its key completed, and the retry replays, making nothing again."""
    from payments.api import payments as payments_api

    def killed(self, created):
        raise RuntimeError("the process died here")

    with monkeypatch.context() as patched:
        patched.setattr(payments_api.CreatedAnswer, "for_payment", killed)
        service_client.raise_request_exception = False
        died = service_client.post(PAYMENTS, FIELDS, format="json", HTTP_IDEMPOTENCY_KEY="cut-after")
    assert died.status_code == 500
    stored = IdempotencyKey.objects.get(key="cut-after")
    assert (stored.state, stored.response_status) == (IdempotencyKey.State.COMPLETED, 201)
    retried = service_client.post(PAYMENTS, FIELDS, format="json", HTTP_IDEMPOTENCY_KEY="cut-after")
    assert (retried.status_code, retried["Idempotent-Replayed"]) == (201, "true")
    assert retried.content.decode() == stored.response_body
    assert retried.json()["id"] == str(Payment.objects.get().pk)
    assert _rows() == (1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_refused_write_stores_no_answer(service_client, outbox_refused):
    response = service_client.post(PAYMENTS, FIELDS, format="json", HTTP_IDEMPOTENCY_KEY="no-answer")
    assert response.status_code == 500
    assert list(IdempotencyKey.objects.values_list("state", "response_status", "response_body")) == [
        ("released", None, "")
    ]
