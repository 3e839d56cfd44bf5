"""The shared strict fields: each rule refuses bad input with a problem body and writes nothing."""

import pytest

from jia_payments.core.api.validation import COUNTRY_CODES, CURRENCY_CODES
from pricing.models import Feature
from testsupport.problems import assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]

THINGS = "/api/test/things/"


def _refused(client, field: str, value, message: str):
    response = client.post(THINGS, {"code": "thing", field: value}, format="json")
    assert_problem(response, 400, "invalid", {field: [message]})
    assert not Feature.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (12.5, "A whole number (JSON integer) is required."),
        ("12", "A whole number (JSON integer) is required."),
        (True, "A whole number (JSON integer) is required."),
        (None, "This field may not be null."),
        (0, "Ensure this value is greater than or equal to 1."),
        (-5, "Ensure this value is greater than or equal to 1."),
        (100_000_000, "Ensure this value is less than or equal to 99999999."),
        (10**30, "Ensure this value is less than or equal to 99999999."),
    ],
)
def test_amount_is_a_json_integer_in_range(user_client, value, message):
    _refused(user_client, "amount", value, message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ABC", "'ABC' is not an ISO 4217 currency code."),
        ("XXX", "'XXX' is not an ISO 4217 currency code."),
        ("XAU", "'XAU' is not an ISO 4217 currency code."),
        ("US", "'US' is not an ISO 4217 currency code."),
        ("USDX", "'USDX' is not an ISO 4217 currency code."),
        (840, "A string is required."),
        ("", "This field may not be blank."),
    ],
)
def test_currency_is_a_real_iso_4217_code(user_client, value, message):
    _refused(user_client, "currency", value, message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ZZ", "'ZZ' is not an ISO 3166-1 alpha-2 country code."),
        ("EU", "'EU' is not an ISO 3166-1 alpha-2 country code."),
        ("IND", "'IND' is not an ISO 3166-1 alpha-2 country code."),
        ("I", "'I' is not an ISO 3166-1 alpha-2 country code."),
        (91, "A string is required."),
    ],
)
def test_country_is_an_existing_two_letter_code(user_client, value, message):
    _refused(user_client, "country", value, message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.00", "A valid number is required."),
        ("-0.10", "A valid number is required."),
        ("0.705", "A valid number is required."),
        (" 0.5", "A valid number is required."),
        ("+0.5", "A valid number is required."),
        ("5e-1", "A valid number is required."),
        (10.0, "Ensure this value is less than or equal to 9.99."),
        (-0.1, "Ensure this value is greater than or equal to 0.00."),
        ("NaN", "A valid number is required."),
        (True, "A valid number is required."),
        ("abc", "A valid number is required."),
    ],
)
def test_multiplier_is_0_to_9_99_with_two_places(user_client, value, message):
    _refused(user_client, "multiplier", value, message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "A JSON object is required."),
        ("text", "A JSON object is required."),
        ({"blob": "a" * 5000}, "At most 4096 bytes of JSON."),
    ],
)
def test_metadata_is_a_bounded_json_object(user_client, value, message):
    _refused(user_client, "metadata", value, message)


def test_text_longer_than_the_column_is_refused(user_client):
    response = user_client.post(THINGS, {"code": "x" * 65}, format="json")
    assert_problem(response, 400, "invalid", {"code": ["Ensure this field has no more than 64 characters."]})
    assert not Feature.objects.exists()


def test_good_values_pass_normalised(user_client):
    body = {
        "code": "thing",
        "amount": 1999,
        "currency": "usd",
        "country": "xk",
        "multiplier": "0.70",
        "metadata": {"k": "v"},
    }
    response = user_client.post(THINGS, body, format="json")
    assert response.status_code == 201
    assert response.json()["echo"] == {**body, "currency": "USD", "country": "XK", "multiplier": 0.7}


def test_code_lists_come_from_the_library():
    assert {"USD", "EUR", "INR", "JPY", "XOF", "VES"} <= CURRENCY_CODES
    assert len(CURRENCY_CODES) > 150
    assert {"IN", "US", "XK", "SS", "CW"} <= COUNTRY_CODES
    assert len(COUNTRY_CODES) == 250


def test_the_identifier_rules_are_the_models_rules_too():
    from jia_payments.core.api.validation import (
        CODE,
        FEATURE_CODE_MAX_LENGTH,
        USER_ID_MAX_LENGTH,
        is_plain_feature_code,
        is_plain_user_id,
    )
    from payments.models import Payment

    assert Feature._meta.get_field("code").max_length == FEATURE_CODE_MAX_LENGTH
    assert CODE in Feature._meta.get_field("code").validators
    assert Payment._meta.get_field("customer_id").max_length == USER_ID_MAX_LENGTH
    assert is_plain_feature_code("a" * FEATURE_CODE_MAX_LENGTH)
    assert not is_plain_feature_code("a" * (FEATURE_CODE_MAX_LENGTH + 1))
    assert not is_plain_feature_code("-calendar")
    assert is_plain_user_id("u:1@x.y_z-" + "a" * (USER_ID_MAX_LENGTH - 11))
    assert not is_plain_user_id("a" * (USER_ID_MAX_LENGTH + 1))
    assert not is_plain_user_id("")
    assert not is_plain_user_id("user 1")


def test_an_integral_json_number_is_an_integer():
    """JSON Schema (the OpenAPI schema's `integer`) counts 12.0 as an integer: so does the API."""
    from jia_payments.core.api.validation import StrictIntegerField

    assert StrictIntegerField(min_value=1).run_validation(12.0) == 12
    assert type(StrictIntegerField().run_validation(12.0)) is int
