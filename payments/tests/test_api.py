"""REST API v1, payments: happy paths with exact bodies, the seed's grpcurl calls, who may do what."""

import uuid

import pytest

from jia_payments.core.models import OutboxEvent
from payments.models import Payment
from payments.tests.factories import PaymentFactory
from payments.tests.payloads import GOOD, created_from_good
from testsupport.problems import assert_problem

pytestmark = pytest.mark.django_db

PAYMENTS = "/api/v1/payments/"


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def body_of(payment: Payment) -> dict:
    payment.refresh_from_db()
    return {
        "id": str(payment.id),
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "payment_method": payment.payment_method,
        "customer_id": payment.customer_id,
        "order_id": payment.order_id,
        "description": payment.description,
        "external_payment_id": payment.external_payment_id,
        "failure_reason": payment.failure_reason,
        "metadata": payment.metadata,
        "created_at": iso(payment.created_at),
        "updated_at": iso(payment.updated_at),
    }


def page(results: list, count: int | None = None, next=None, previous=None) -> dict:
    return {
        "count": len(results) if count is None else count,
        "next": next,
        "previous": previous,
        "results": results,
    }


def test_the_seeds_grpcurl_examples_as_rest_calls(api_client_for, service_client):
    customer = api_client_for("customer_123")
    # CreatePayment
    created = customer.post(PAYMENTS, GOOD, format="json")
    assert created.status_code == 201
    payment = Payment.objects.get()
    assert payment.external_payment_id.startswith("pi_")  # a card payment is a Stripe PaymentIntent
    expected = created_from_good(payment, iso)
    assert created.json() == {**expected, "client_secret": created.json()["client_secret"]}
    assert created.json()["client_secret"].startswith(payment.external_payment_id + "_secret_")
    # GetPayment
    assert customer.get(f"{PAYMENTS}{payment.id}/").json() == expected
    # GetPaymentsByCustomer
    assert customer.get(PAYMENTS, {"customer_id": "customer_123"}).json() == page([expected])
    # ListPayments
    assert service_client.get(PAYMENTS).json() == page([expected])


def test_create_records_payment_created_with_the_api_body(service_client):
    response = service_client.post(PAYMENTS, {**GOOD, "metadata": {"source": "app"}}, format="json")
    event = OutboxEvent.objects.get()
    assert event.type == "payment.created"
    assert event.aggregate_id == response.json()["id"]
    assert event.subject == f"payments/{response.json()['id']}"
    answer = response.json()
    assert answer.pop("client_secret").startswith(answer["external_payment_id"])  # a card payment
    assert event.envelope["data"] == answer


def test_status_moves_record_their_events(service_client):
    payment = PaymentFactory()
    response = service_client.post(f"{PAYMENTS}{payment.id}/status/", {"status": "completed"}, format="json")
    assert response.status_code == 200
    assert response.json() == {**body_of(payment), "status": "completed"}
    assert list(OutboxEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "payment.status.updated",
        "payment.completed",
    ]
    assert OutboxEvent.objects.first().envelope["data"] == response.json()


def test_failed_needs_a_reason_and_keeps_it(staff_client):
    payment = PaymentFactory()
    url = f"{PAYMENTS}{payment.id}/status/"
    assert_problem(
        staff_client.post(url, {"status": "failed"}, format="json"),
        400,
        "invalid",
        {"failure_reason": ["Required when the status is failed."]},
    )
    response = staff_client.post(url, {"status": "failed", "failure_reason": "card_declined"}, format="json")
    assert response.json()["status"] == "failed"
    assert response.json()["failure_reason"] == "card_declined"
    assert list(OutboxEvent.objects.values_list("type", flat=True)) == ["payment.status.updated"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("completed", "completed"),
        ("completed", "failed"),
        ("completed", "cancelled"),
        ("failed", "completed"),
        ("cancelled", "completed"),
        ("refunded", "cancelled"),
        ("completed", "pending"),
        ("pending", "pending"),
    ],
)
def test_illegal_moves_are_409_and_change_nothing(service_client, current, target):
    payment = PaymentFactory(status=current)
    before = body_of(payment)
    body = {"status": target, **({"failure_reason": "x"} if target == "failed" else {})}
    response = service_client.post(f"{PAYMENTS}{payment.id}/status/", body, format="json")
    problem = assert_problem(response, 409, "invalid_transition")
    assert problem["detail"] == f"A {current} payment cannot become {target}."
    assert body_of(payment) == before
    assert not OutboxEvent.objects.exists()


def test_status_endpoint_does_not_refund(service_client):
    payment = PaymentFactory(status="completed")
    response = service_client.post(f"{PAYMENTS}{payment.id}/status/", {"status": "refunded"}, format="json")
    assert_problem(response, 400, "invalid", {"status": ['"refunded" is not a valid choice.']})


def test_list_filters_by_status_and_customer_newest_first(service_client):
    old = PaymentFactory(customer_id="c1")
    new = PaymentFactory(customer_id="c1", status="completed")
    other = PaymentFactory(customer_id="c2")
    assert service_client.get(PAYMENTS).json() == page([body_of(other), body_of(new), body_of(old)])
    assert service_client.get(PAYMENTS, {"customer_id": "c1"}).json() == page([body_of(new), body_of(old)])
    assert service_client.get(PAYMENTS, {"status": "completed"}).json() == page([body_of(new)])
    assert service_client.get(PAYMENTS, {"customer_id": "c1", "status": "failed"}).json() == page([])


def test_list_pagination_counts_and_links(service_client):
    for _ in range(5):
        PaymentFactory()
    body = service_client.get(PAYMENTS, {"limit": 2, "offset": 2}).json()
    assert body["count"] == 5
    assert len(body["results"]) == 2
    assert body["next"] == "http://testserver/api/v1/payments/?limit=2&offset=4"
    assert body["previous"] == "http://testserver/api/v1/payments/?limit=2"


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"status": "paid"}, {"status": ['"paid" is not a valid choice.']}),
        ({"customer_id": "c" * 256}, {"customer_id": ["Ensure this field has no more than 255 characters."]}),
        ({"limit": "0"}, {"limit": ["Must be a whole number between 1 and 100."]}),
        ({"limit": "-1"}, {"limit": ["Must be a whole number between 1 and 100."]}),
        ({"limit": str(10**9)}, {"limit": ["Must be a whole number between 1 and 100."]}),
        ({"limit": "all"}, {"limit": ["Must be a whole number between 1 and 100."]}),
        ({"offset": "x"}, {"offset": ["Must be a whole number between 0 and 1000000000."]}),
    ],
)
def test_list_rejects_nonsense_filters(service_client, query, errors):
    assert_problem(service_client.get(PAYMENTS, query), 400, "invalid", errors)


# --- who may do what ----------------------------------------------------------------------


def test_an_end_user_sees_only_their_own_payments(api_client_for):
    mine = PaymentFactory(customer_id="user_a")
    PaymentFactory(customer_id="user_b")
    client = api_client_for("user_a")
    assert client.get(PAYMENTS).json() == page([body_of(mine)])
    assert client.get(PAYMENTS, {"customer_id": "user_b"}).json() == page([])


def test_user_a_gets_404_for_each_of_user_bs_payments(api_client_for):
    theirs = PaymentFactory(customer_id="user_b")
    client = api_client_for("user_a")
    body = assert_problem(client.get(f"{PAYMENTS}{theirs.id}/"), 404, "not_found")
    assert body["detail"] == "No such payment."
    # the same answer as for a payment that does not exist at all
    assert client.get(f"{PAYMENTS}{uuid.uuid4()}/").json() == body


def test_an_end_user_creates_only_for_themself(api_client_for):
    response = api_client_for("user_a").post(PAYMENTS, {**GOOD, "customer_id": "user_b"}, format="json")
    assert_problem(response, 403, "permission_denied")
    assert not Payment.objects.exists()


def test_an_end_user_may_not_move_a_status_even_their_own(api_client_for):
    payment = PaymentFactory(customer_id="user_a")
    response = api_client_for("user_a").post(f"{PAYMENTS}{payment.id}/status/", {"status": "completed"})
    assert_problem(response, 403, "permission_denied")
    payment.refresh_from_db()
    assert payment.status == "pending"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "", None),
        ("post", "", GOOD),
        ("get", "{id}/", None),
        ("post", "{id}/status/", {"status": "completed"}),
    ],
)
def test_anonymous_is_401_everywhere(anon_client, method, path, body):
    payment = PaymentFactory()
    url = PAYMENTS + path.format(id=payment.id)
    response = getattr(anon_client, method)(url, body, format="json")
    assert_problem(response, 401, "not_authenticated")
    assert Payment.objects.count() == 1


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_id_is_404(service_client, bad_id):
    assert_problem(service_client.get(f"{PAYMENTS}{bad_id}/"), 404, "not_found")
    assert_problem(
        service_client.post(f"{PAYMENTS}{bad_id}/status/", {"status": "completed"}), 404, "not_found"
    )


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_the_trailing_slash_is_redirected_keeping_method_and_body(
    api_client_for, settings, debug
):
    settings.DEBUG = debug
    customer = api_client_for("customer_123")
    response = customer.post("/api/v1/payments?x=1", GOOD, format="json")
    assert response.status_code == 308  # not 301, which turns the POST into a GET without its body
    assert response["Location"] == "/api/v1/payments/?x=1"
    assert not Payment.objects.exists()
