"""gRPC payment.v1.PaymentService: the old service's calls with REST's rules, from the same code."""

import threading
import uuid

import grpc
import pytest
from django.test import override_settings

from jia_payments.core.audit.trail import entries_for
from jia_payments.core.models import OutboxEvent
from jia_payments.protos.payment.v1 import payment_pb2 as pb
from jia_payments.protos.payment.v1.payment_pb2_grpc import PaymentServiceStub
from payments.models import Payment
from payments.tests.factories import PaymentFactory
from payments.tests.payloads import GOOD, created_from_good
from testsupport.grpc import failure, field_errors, plain, reason_of, rest_like
from testsupport.processes import free_port

SERVICE = ("svc_family_app", "service")


@pytest.fixture
def payments(grpc_channel):
    return PaymentServiceStub(grpc_channel)


def test_the_old_service_s_examples(payments, as_user):
    customer = as_user("customer_123")
    created = payments.CreatePayment(pb.CreatePaymentRequest(**GOOD), metadata=customer).payment
    payment = Payment.objects.get()
    assert payment.external_payment_id.startswith("pi_")  # a card payment is a Stripe PaymentIntent
    expected = created_from_good(payment)
    assert plain(created) == expected
    got = payments.GetPayment(pb.GetPaymentRequest(id=created.id), metadata=customer)
    assert plain(got.payment) == expected
    by_customer = payments.GetPaymentsByCustomer(
        pb.GetPaymentsByCustomerRequest(customer_id="customer_123", limit=10), metadata=customer
    )
    assert ([plain(p) for p in by_customer.payments], by_customer.total) == ([expected], 1)
    listed = payments.ListPayments(pb.ListPaymentsRequest(limit=10), metadata=as_user(*SERVICE))
    assert ([plain(p) for p in listed.payments], listed.total) == ([expected], 1)
    moved = payments.UpdatePaymentStatus(
        pb.UpdatePaymentStatusRequest(id=created.id, status="completed"), metadata=as_user(*SERVICE)
    )
    assert moved.success
    assert plain(moved.payment)["status"] == "completed"


def test_a_payment_read_through_rest_and_grpc_is_the_same(payments, as_user, api_client_for):
    PaymentFactory(customer_id="customer_123", metadata={"source": "ios", "n": 2}, description="Rëad")
    payment = PaymentFactory(customer_id="customer_123", status="failed", failure_reason="card_declined")
    client = api_client_for("customer_123")
    for row in Payment.objects.all():
        rest = client.get(f"/api/v1/payments/{row.id}/").json()
        grpc_answer = payments.GetPayment(
            pb.GetPaymentRequest(id=str(row.id)), metadata=as_user("customer_123")
        )
        assert plain(grpc_answer.payment) == rest_like(rest)
    rest_page = client.get("/api/v1/payments/", {"customer_id": "customer_123"}).json()
    grpc_page = payments.GetPaymentsByCustomer(
        pb.GetPaymentsByCustomerRequest(customer_id="customer_123"), metadata=as_user("customer_123")
    )
    assert [plain(p) for p in grpc_page.payments] == [rest_like(p) for p in rest_page["results"]]
    assert grpc_page.total == rest_page["count"] == 2
    assert grpc_page.payments[0].id == str(payment.id)  # newest first


# --- create: validation, who for whom, idempotency, Stripe ------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"currency": ""}, {"currency": ["This field is required."]}),
        ({"currency": "usd!"}, None),
        ({"amount": 0}, {"amount": ["Ensure this value is greater than or equal to 1."]}),
        ({"amount": -5}, {"amount": ["Ensure this value is greater than or equal to 1."]}),
        ({"payment_method": "cash"}, {"payment_method": ['"cash" is not a valid choice.']}),
        ({"customer_id": ""}, {"customer_id": ["This field is required."]}),
    ],
)
def test_create_validates_as_rest_and_creates_nothing(payments, as_user, fields, errors, api_client_for):
    body = {**GOOD, **fields}
    error = failure(
        lambda: payments.CreatePayment(pb.CreatePaymentRequest(**body), metadata=as_user(*SERVICE))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(error) == "invalid"
    rest_body = {key: value for key, value in body.items() if value != ""}
    client = api_client_for(SERVICE[0], role=SERVICE[1])
    rest_errors = client.post("/api/v1/payments/", rest_body, format="json").json()["errors"]
    assert field_errors(error) == rest_errors
    if errors is not None:
        assert field_errors(error) == errors
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_end_user_creates_only_for_themself(payments, as_user):
    error = failure(
        lambda: payments.CreatePayment(
            pb.CreatePaymentRequest(**{**GOOD, "customer_id": "someone_else"}),
            metadata=as_user("customer_123"),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "An end user may only create payments for themself."
    assert not Payment.objects.exists()


def test_a_service_creates_for_anyone_with_metadata_and_an_event(payments, as_user):
    request = pb.CreatePaymentRequest(**{**GOOD, "payment_method": "bank_transfer", "customer_id": "cust_9"})
    request.metadata.update({"source": "app", "attempt": 2})
    created = payments.CreatePayment(request, metadata=as_user(*SERVICE)).payment
    assert plain(created)["metadata"] == {"source": "app", "attempt": 2}
    assert created.external_payment_id == ""  # not charged through Stripe
    event = OutboxEvent.objects.get()
    assert (event.type, event.aggregate_id) == ("payment.created", created.id)
    assert rest_like(event.envelope["data"]) == plain(created)


def test_no_token_is_unauthenticated(payments):
    error = failure(lambda: payments.CreatePayment(pb.CreatePaymentRequest(**GOOD)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(error) == "not_authenticated"
    error = failure(lambda: payments.ListPayments(pb.ListPaymentsRequest()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("where", ["field", "metadata"])
def test_an_idempotency_key_replays_the_first_payment(payments, as_user, where):
    key = f"order_123-{where}"
    request = pb.CreatePaymentRequest(**GOOD, idempotency_key=key if where == "field" else "")
    metadata = as_user("customer_123", **({"idempotency_key": key} if where == "metadata" else {}))
    first = payments.CreatePayment(request, metadata=metadata).payment
    again = payments.CreatePayment(request, metadata=metadata).payment
    assert plain(again) == plain(first)
    assert Payment.objects.count() == 1
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["payment.created"]


def test_a_key_reused_for_another_request_is_already_exists(payments, as_user):
    payments.CreatePayment(
        pb.CreatePaymentRequest(**GOOD, idempotency_key="k"), metadata=as_user("customer_123")
    )
    error = failure(
        lambda: payments.CreatePayment(
            pb.CreatePaymentRequest(**{**GOOD, "amount": 2999}, idempotency_key="k"),
            metadata=as_user("customer_123"),
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(error) == "idempotency_key_reused"
    assert list(Payment.objects.values_list("amount", flat=True)) == [1999]


@pytest.mark.parametrize("payment_method", ["credit_card", "bank_transfer"])
def test_10_concurrent_identical_creates_make_exactly_one_payment(grpc_server, as_user, payment_method):
    _, channel = grpc_server
    stub = PaymentServiceStub(channel)
    request = pb.CreatePaymentRequest(**{**GOOD, "payment_method": payment_method}, idempotency_key="race")
    metadata = as_user("customer_123")
    barrier = threading.Barrier(10)
    results: list = [None] * 10

    def create(index: int):
        barrier.wait()
        try:
            results[index] = ("OK", stub.CreatePayment(request, metadata=metadata, timeout=60).payment.id)
        except grpc.RpcError as error:
            results[index] = (error.code().name, reason_of(error))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Payment.objects.count() == 1
    assert OutboxEvent.objects.filter(type="payment.created").count() == 1
    payment_id = str(Payment.objects.get().id)
    assert ("OK", payment_id) in results
    assert set(results) <= {("OK", payment_id), ("ABORTED", "idempotency_key_in_progress")}


def test_stripe_down_is_unavailable_and_creates_nothing(payments, as_user):
    request = pb.CreatePaymentRequest(**GOOD, idempotency_key="pay-1")
    with override_settings(STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}", STRIPE_MAX_NETWORK_RETRIES=0):
        error = failure(lambda: payments.CreatePayment(request, metadata=as_user("customer_123")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(error) == "stripe_unavailable"
    assert not Payment.objects.exists() and not OutboxEvent.objects.exists()
    again = payments.CreatePayment(request, metadata=as_user("customer_123"))  # the key was not spent
    assert again.payment.id == str(Payment.objects.get().id)


# --- reads: the object rules ----------------------------------------------------------------


def test_another_user_s_payment_is_not_found(payments, as_user):
    theirs = PaymentFactory(customer_id="customer_a")
    for payment_id in (str(theirs.id), str(uuid.uuid4()), "not-a-uuid", ""):
        error = failure(
            lambda pid=payment_id: payments.GetPayment(
                pb.GetPaymentRequest(id=pid), metadata=as_user("customer_b")
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() in ("No such payment.", "No such resource.")
    assert payments.GetPayment(
        pb.GetPaymentRequest(id=str(theirs.id)), metadata=as_user("customer_a")
    ).payment.id == str(theirs.id)
    assert payments.GetPayment(
        pb.GetPaymentRequest(id=str(theirs.id)), metadata=as_user("staff_bob", "admin")
    ).payment.id


def test_an_end_user_sees_only_their_own_payments(payments, as_user):
    mine = PaymentFactory(customer_id="customer_a")
    PaymentFactory(customer_id="customer_b")
    listed = payments.ListPayments(pb.ListPaymentsRequest(), metadata=as_user("customer_a"))
    assert ([p.id for p in listed.payments], listed.total) == ([str(mine.id)], 1)
    theirs = payments.GetPaymentsByCustomer(
        pb.GetPaymentsByCustomerRequest(customer_id="customer_b"), metadata=as_user("customer_a")
    )
    assert (list(theirs.payments), theirs.total) == ([], 0)


def test_lists_count_every_match_and_page_newest_first(payments, as_user):
    rows = [PaymentFactory(customer_id="cust", status="completed" if n % 2 else "pending") for n in range(5)]
    service = as_user(*SERVICE)
    page = payments.ListPayments(pb.ListPaymentsRequest(limit=2, offset=1), metadata=service)
    assert ([p.id for p in page.payments], page.total) == ([str(rows[3].id), str(rows[2].id)], 5)
    completed = payments.ListPayments(pb.ListPaymentsRequest(status="completed"), metadata=service)
    assert ([p.id for p in completed.payments], completed.total) == ([str(rows[3].id), str(rows[1].id)], 2)
    by_customer = payments.GetPaymentsByCustomer(
        pb.GetPaymentsByCustomerRequest(customer_id="cust", limit=1), metadata=service
    )
    assert ([p.id for p in by_customer.payments], by_customer.total) == ([str(rows[4].id)], 5)
    error = failure(lambda: payments.ListPayments(pb.ListPaymentsRequest(status="lost"), metadata=service))
    assert field_errors(error) == {"status": ['"lost" is not a valid choice.']}
    error = failure(
        lambda: payments.GetPaymentsByCustomer(pb.GetPaymentsByCustomerRequest(), metadata=service)
    )
    assert field_errors(error) == {"customer_id": ["This field is required."]}
    error = failure(lambda: payments.ListPayments(pb.ListPaymentsRequest(limit=500), metadata=service))
    assert field_errors(error) == {"limit": ["Must be a whole number between 1 and 100."]}


# --- status moves: who, the state machine, events, audit ------------------------------------------


def test_an_end_user_may_not_move_a_status(payments, as_user):
    payment = PaymentFactory(customer_id="customer_a")
    error = failure(
        lambda: payments.UpdatePaymentStatus(
            pb.UpdatePaymentStatusRequest(id=str(payment.id), status="completed"),
            metadata=as_user("customer_a"),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_a_move_records_its_events_and_who_made_it(payments, as_user):
    payment = PaymentFactory()
    moved = payments.UpdatePaymentStatus(
        pb.UpdatePaymentStatusRequest(id=str(payment.id), status="completed"), metadata=as_user(*SERVICE)
    )
    assert (moved.success, moved.payment.status) == (True, "completed")
    assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "payment.status.updated",
        "payment.completed",
    ]
    assert rest_like(OutboxEvent.objects.first().envelope["data"]) == plain(moved.payment)
    (entry,) = [e for e in entries_for(payment) if e.changes_dict.get("status") == ["pending", "completed"]]
    assert entry.additional_data["actor"] == "service:svc_family_app"
    assert entry.additional_data["request"] == "POST /payment.v1.PaymentService/UpdatePaymentStatus"


def test_failed_needs_a_reason(payments, as_user):
    payment = PaymentFactory()
    error = failure(
        lambda: payments.UpdatePaymentStatus(
            pb.UpdatePaymentStatusRequest(id=str(payment.id), status="failed"), metadata=as_user(*SERVICE)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error) == {"failure_reason": ["Required when the status is failed."]}
    moved = payments.UpdatePaymentStatus(
        pb.UpdatePaymentStatusRequest(id=str(payment.id), status="failed", failure_reason="card_declined"),
        metadata=as_user(*SERVICE),
    )
    assert (moved.payment.status, moved.payment.failure_reason) == ("failed", "card_declined")


def test_an_illegal_move_is_failed_precondition_and_changes_nothing(payments, as_user):
    payment = PaymentFactory(status="completed")
    error = failure(
        lambda: payments.UpdatePaymentStatus(
            pb.UpdatePaymentStatusRequest(id=str(payment.id), status="cancelled"), metadata=as_user(*SERVICE)
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (reason_of(error), error.details()) == (
        "invalid_transition",
        "A completed payment cannot become cancelled.",
    )
    payment.refresh_from_db()
    assert payment.status == "completed"
    assert not OutboxEvent.objects.exists()


def test_moving_an_unknown_payment_is_not_found(payments, as_user):
    for payment_id in (str(uuid.uuid4()), "nope"):
        error = failure(
            lambda pid=payment_id: payments.UpdatePaymentStatus(
                pb.UpdatePaymentStatusRequest(id=pid, status="completed"), metadata=as_user(*SERVICE)
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND


def test_writes_spend_the_rest_write_rate_limit(payments, as_user, settings):
    framework = {**settings.REST_FRAMEWORK}
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], "write": "1/min"}
    settings.REST_FRAMEWORK = framework
    body = {**GOOD, "payment_method": "bank_transfer"}
    payments.CreatePayment(pb.CreatePaymentRequest(**body), metadata=as_user("customer_123"))
    error = failure(
        lambda: payments.CreatePayment(pb.CreatePaymentRequest(**body), metadata=as_user("customer_123"))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert Payment.objects.count() == 1
    payments.ListPayments(pb.ListPaymentsRequest(), metadata=as_user("customer_123"))  # reads are not writes


def test_the_stored_answer_is_written_with_the_payment(payments, as_user, monkeypatch):
    from jia_payments.core.api import idempotency
    from jia_payments.core.models import IdempotencyKey

    def stored_apart(record, response):
        raise AssertionError("the answer was stored by a statement of its own")

    monkeypatch.setattr(idempotency, "_store", stored_apart)
    request = pb.CreatePaymentRequest(**GOOD, idempotency_key="with-the-payment")
    first = payments.CreatePayment(request, metadata=as_user("customer_123")).payment
    stored = IdempotencyKey.objects.get(key="with-the-payment")
    assert (stored.state, stored.response_status) == (IdempotencyKey.State.COMPLETED, 201)
    again = payments.CreatePayment(request, metadata=as_user("customer_123")).payment
    assert plain(again) == plain(first)
    assert Payment.objects.count() == 1
