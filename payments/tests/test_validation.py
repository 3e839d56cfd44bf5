"""Bad input to the payments API changes nothing: a problem body, no payment, no event."""

import pytest

from jia_payments.core.models import IdempotencyKey, OutboxEvent
from payments.models import Payment
from payments.tests.payloads import GOOD
from testsupport.problems import assert_problem

pytestmark = pytest.mark.django_db

PAYMENTS = "/api/v1/payments/"
WHOLE = "A whole number (JSON integer) is required."


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"amount": 0}, {"amount": ["Ensure this value is greater than or equal to 1."]}),
        ({"amount": -1999}, {"amount": ["Ensure this value is greater than or equal to 1."]}),
        ({"amount": 100_000_000}, {"amount": ["Ensure this value is less than or equal to 99999999."]}),
        ({"amount": 19.99}, {"amount": [WHOLE]}),
        ({"amount": "1999"}, {"amount": [WHOLE]}),
        ({"amount": True}, {"amount": [WHOLE]}),
        ({"amount": None}, {"amount": ["This field may not be null."]}),
        ({"currency": "usdollar"}, {"currency": ["'USDOLLAR' is not an ISO 4217 currency code."]}),
        ({"currency": "ABC"}, {"currency": ["'ABC' is not an ISO 4217 currency code."]}),
        ({"currency": "XTS"}, {"currency": ["'XTS' is not an ISO 4217 currency code."]}),
        ({"currency": 840}, {"currency": ["A string is required."]}),
        ({"payment_method": "cash"}, {"payment_method": ['"cash" is not a valid choice.']}),
        (
            {"payment_method": "stripe_checkout"},
            {"payment_method": ['"stripe_checkout" is not a valid choice.']},
        ),
        ({"customer_id": ""}, {"customer_id": ["This field may not be blank."]}),
        ({"customer_id": 123}, {"customer_id": ["A string is required."]}),
        ({"customer_id": "c" * 256}, {"customer_id": ["Ensure this field has no more than 255 characters."]}),
        ({"order_id": "o" * 256}, {"order_id": ["Ensure this field has no more than 255 characters."]}),
        (
            {"description": "d" * 1001},
            {"description": ["Ensure this field has no more than 1000 characters."]},
        ),
        ({"description": "nul\x00byte"}, {"description": ["Null characters are not allowed."]}),
        ({"metadata": ["a"]}, {"metadata": ["A JSON object is required."]}),
        ({"metadata": {"k": "v" * 5000}}, {"metadata": ["At most 4096 bytes of JSON."]}),
        ({"status": "completed"}, {"status": ["Unknown field."]}),
        ({"id": "00000000-0000-0000-0000-000000000000"}, {"id": ["Unknown field."]}),
        ({"external_payment_id": "pi_123"}, {"external_payment_id": ["Unknown field."]}),
    ],
)
def test_each_rule_refuses_and_writes_nothing(service_client, change, errors):
    response = service_client.post(PAYMENTS, {**GOOD, **change}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert_problem(response, 400, "invalid", errors)
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("field", ["amount", "currency", "payment_method", "customer_id"])
def test_required_fields(service_client, field):
    body = {name: value for name, value in GOOD.items() if name != field}
    assert_problem(
        service_client.post(PAYMENTS, body, format="json"),
        400,
        "invalid",
        {field: ["This field is required."]},
    )
    assert not Payment.objects.exists()


def test_limits_are_inclusive_and_currency_is_upper_cased(service_client):
    low = service_client.post(PAYMENTS, {**GOOD, "amount": 1, "currency": "inr"}, format="json")
    high = service_client.post(
        PAYMENTS, {**GOOD, "amount": 99_999_999, "description": "d" * 1000}, format="json"
    )
    assert (low.status_code, high.status_code) == (201, 201)
    assert (low.json()["amount"], low.json()["currency"]) == (1, "INR")
    assert high.json()["amount"] == 99_999_999


def test_malformed_json_and_wrong_content_type_write_nothing(service_client):
    assert_problem(
        service_client.post(PAYMENTS, b"{amount: 1}", content_type="application/json"),
        400,
        "malformed_request",
    )
    form = service_client.post(PAYMENTS, "amount=1999", content_type="application/x-www-form-urlencoded")
    assert_problem(form, 415, "unsupported_media_type")
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        (rb'{"note": "a\u0000b"}', "invalid"),
        (rb'{"\u0000": 1}', "invalid"),
        (rb'{"note": "\ud800"}', "malformed_request"),
        (rb'{"\udc00x": "y"}', "malformed_request"),
    ],
)
def test_text_postgresql_cannot_store_in_metadata_is_400_and_writes_nothing(service_client, metadata, code):
    import json

    body = json.dumps(GOOD).encode()[:-1] + b', "metadata": ' + metadata + b"}"
    response = service_client.post(
        PAYMENTS, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="nul-1"
    )
    errors = {"metadata": ["Null characters are not allowed."]} if code == "invalid" else None
    assert_problem(response, 400, code, errors)
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert not IdempotencyKey.objects.exists()


PLAIN_BODIES = [
    GOOD,
    {**GOOD, "payment_method": "bank_transfer", "metadata": {"source": "ios", "n": 1, "on": True, "x": None}},
    {"amount": 1, "currency": "EUR", "payment_method": "wallet", "customer_id": "c"},
    {**GOOD, "amount": 99_999_999, "order_id": "", "description": "", "metadata": {}},
    {**GOOD, "customer_id": "c" * 255, "order_id": "o" * 255, "description": "d" * 1000},
]
# Each goes through the serializer: valid ones it changes (upper-cased currency, 12.0) or that are
# not plain (non-ASCII text, nested metadata), and every invalid one.
OTHER_BODIES = [
    {**GOOD, "currency": "usd"},
    {**GOOD, "amount": 1999.0},
    {**GOOD, "description": "Prämie"},
    {**GOOD, "metadata": {"nested": {"a": [1, 2]}}},
    {**GOOD, "metadata": {"k": "a\u0000b"}},
    {**GOOD, "metadata": {"k": 1.5}},
    {**GOOD, "metadata": None},
    {**GOOD, "metadata": []},
    {**GOOD, "metadata": {f"k{n}": "v" * 200 for n in range(21)}},
    {**GOOD, "amount": True},
    {**GOOD, "amount": 0},
    {**GOOD, "amount": 100_000_000},
    {**GOOD, "currency": "XTS"},
    {**GOOD, "payment_method": "stripe_checkout"},
    {**GOOD, "payment_method": 1},
    {**GOOD, "customer_id": ""},
    {**GOOD, "customer_id": "c" * 256},
    {**GOOD, "order_id": None},
    {**GOOD, "description": "d" * 1001},
    {**GOOD, "description": "a\u0000b"},
    {**GOOD, "status": "completed"},
    {key: value for key, value in GOOD.items() if key != "customer_id"},
    [GOOD],
]


def _by_the_serializer(body):
    from payments.api.payments import PaymentCreateSerializer

    serializer = PaymentCreateSerializer(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else serializer.errors


@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_a_plainly_valid_body_skips_the_serializer_and_gives_its_validated_data(body):
    from payments.api.payments import _create_data, _is_plain_create

    assert _is_plain_create(body)
    data = _create_data(body)
    assert data == _by_the_serializer(body)
    assert {key: type(value) for key, value in data.items()} == {
        key: type(value) for key, value in _by_the_serializer(body).items()
    }


@pytest.mark.parametrize("body", OTHER_BODIES)
def test_any_other_body_goes_through_the_serializer(body):
    from rest_framework.exceptions import ValidationError

    from payments.api.payments import _create_data, _is_plain_create

    assert not _is_plain_create(body)
    expected = _by_the_serializer(body)
    try:
        assert _create_data(body) == expected
    except ValidationError as error:
        assert error.detail == expected
