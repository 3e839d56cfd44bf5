"""Idempotency-Key on POST /api/v1/payments/: replay, mismatch, and 20 concurrent requests."""

import threading

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jia_payments.core.api.errors import InvalidTransition
from jia_payments.core.models import IdempotencyKey, OutboxEvent
from payments.models import Payment
from payments.services import payment_move_status
from payments.tests.factories import PaymentFactory
from payments.tests.payloads import GOOD
from testsupport.concurrency import concurrent_posts
from testsupport.problems import assert_problem

PAYMENTS = "/api/v1/payments/"


@pytest.mark.django_db
def test_replay_returns_the_first_payment_and_makes_no_second(api_client_for):
    client = api_client_for("customer_123")
    first = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-try")
    again = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-try")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["payment.created"]


@pytest.mark.django_db
def test_a_replay_reads_the_stored_answer_without_a_failed_insert(
    api_client_for, django_assert_max_num_queries
):
    client = api_client_for("customer_123")
    client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-try")
    with django_assert_max_num_queries(4) as captured:  # savepoint, claim (no-op), read, release
        again = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-try")
    assert again["Idempotent-Replayed"] == "true"
    assert not any("ROLLBACK" in query["sql"] for query in captured.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_create_is_two_statements_and_no_transaction_of_its_own(api_client_for):
    """The claim, then the payment, its audit entry, its event and the stored answer in one
    statement (atomic by itself: no BEGIN, no COMMIT, no savepoint); nothing read back."""
    client = api_client_for("customer_123")
    ContentType.objects.get_for_model(Payment)  # the audit entry's, read once per process
    with CaptureQueriesContext(connection) as captured:
        created = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-once")
    assert created.status_code == 201
    statements = [query["sql"].replace('"', "") for query in captured.captured_queries]
    shapes = [
        [(words[0], words[words.index("INTO") + 1]) for words in _inserts(sql)] or sql.split()[:2]
        for sql in statements
    ]
    assert shapes == [
        [("INSERT", "core_idempotencykey")],
        [("INSERT", "payments_payment"), ("INSERT", "auditlog_logentry"), ("INSERT", "core_outboxevent")],
    ]
    assert statements[1].startswith("WITH ")
    assert "r3 AS (UPDATE core_idempotencykey SET state = " in statements[1]
    stored = IdempotencyKey.objects.get(key="order_123-once")
    assert (stored.state, stored.response_status) == (IdempotencyKey.State.COMPLETED, 201)
    assert stored.response_body == created.content.decode()


def _inserts(sql: str) -> list[list[str]]:
    return [("INSERT " + part).split() for part in sql.split("INSERT ")[1:]]


@pytest.mark.django_db
def test_same_key_other_body_is_422(api_client_for):
    client = api_client_for("customer_123")
    client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = client.post(PAYMENTS, {**GOOD, "amount": 2999}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(response, 422, "idempotency_key_reused")
    assert list(Payment.objects.values_list("amount", flat=True)) == [1999]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("payment_method", ["credit_card", "bank_transfer"])
def test_20_concurrent_creates_with_one_key_make_exactly_one_payment(
    live_server, token_issuer, payment_method
):
    """A create may call Stripe (a card payment's PaymentIntent), so the key is claimed in its own
    transaction (core.idempotency, atomic=False): a request arriving while the first is still at
    work is 409 `idempotency_key_in_progress` (retry later); one payment whatever the timing."""
    body = {**GOOD, "payment_method": payment_method}
    results = concurrent_posts(f"{live_server.url}{PAYMENTS}", token_issuer.token("customer_123"), body, 20)
    assert Payment.objects.count() == 1
    assert OutboxEvent.objects.filter(type="payment.created").count() == 1
    payment_id = str(Payment.objects.get().id)
    answers = {(status, body.get("id") or body.get("code")) for status, body, _ in results}
    assert (201, payment_id) in answers
    assert answers <= {(201, payment_id), (409, "idempotency_key_in_progress")}
    assert sum(status == 201 and not replayed for status, _, replayed in results) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_status_moves_let_exactly_one_win():
    """Two sessions move one pending payment at once (complete vs cancel): one wins, one is 409."""
    payment = PaymentFactory()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def move(status: str):
        try:
            barrier.wait()
            payment_move_status(payment_id=payment.id, status=status)
            outcomes[status] = "moved"
        except InvalidTransition:
            outcomes[status] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(status,)) for status in ("completed", "cancelled")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["moved", "refused"]
    payment.refresh_from_db()
    winner = next(status for status, outcome in outcomes.items() if outcome == "moved")
    assert payment.status == winner
    assert OutboxEvent.objects.filter(type="payment.status.updated").count() == 1
