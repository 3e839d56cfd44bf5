"""Idempotency-Key on POST /api/v1/payments/: replay, mismatch, and 20 concurrent requests."""

import threading

import pytest
from django.db import connection

from jia_payments.core.api.errors import InvalidTransition
from jia_payments.core.models import OutboxEvent
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


@pytest.mark.django_db
def test_a_create_writes_each_row_once_and_reads_nothing_back(api_client_for, django_assert_max_num_queries):
    """The claim, the payment, its audit entry, its event, the stored answer: one statement each,
    no SELECT, and no savepoint of its own (the test's transaction turns the write's block into one)."""
    client = api_client_for("customer_123")
    with django_assert_max_num_queries(8) as captured:
        created = client.post(PAYMENTS, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="order_123-once")
    assert created.status_code == 201
    statements = [query["sql"].replace('"', "").split() for query in captured.captured_queries]
    savepoints = [words for words in statements if words[0] == "SAVEPOINT"]
    writes = [(words[0], words[2] if words[0] == "INSERT" else words[1]) for words in statements]
    writes = [write for write in writes if write[0] in ("INSERT", "UPDATE", "DELETE", "SELECT")]
    assert writes == [
        ("INSERT", "core_idempotencykey"),
        ("INSERT", "payments_payment"),
        ("INSERT", "auditlog_logentry"),
        ("INSERT", "core_outboxevent"),
        ("UPDATE", "core_idempotencykey"),
    ]
    assert len(savepoints) <= 1


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
