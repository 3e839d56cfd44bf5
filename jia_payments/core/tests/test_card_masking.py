"""Card numbers are masked in logs; ids that merely contain digit runs (UUIDs, hex, Stripe ids) are not."""

import random
import string
import uuid

import pytest

from jia_payments.core.ops.logs import REDACTED, redact

# Stripe's and the networks' published test card numbers: 14 to 19 digits, every brand.
TEST_PANS = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa debit
    "4222222222222",  # Visa, 13 digits
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "5105105105105100",  # Mastercard prepaid
    "378282246310005",  # American Express, 15 digits
    "371449635398431",  # American Express
    "6011111111111117",  # Discover
    "36227206271667",  # Diners Club, 14 digits
    "3566002020360505",  # JCB
    "6200000000000005",  # UnionPay
    "6205500000000000004",  # UnionPay, 19 digits
]


def _typed(pan: str, separator: str) -> str:
    """The way people type a number: Amex as 4-6-5, the others in groups of four."""
    groups = (4, 6, 5) if len(pan) == 15 else (4,) * (len(pan) // 4 + 1)
    parts, start = [], 0
    for size in groups:
        if start < len(pan):
            parts.append(pan[start : start + size])
        start += size
    return separator.join(parts)


def _masked(text: str, key: str = "event") -> str:
    return redact(None, "info", {key: text})[key]


@pytest.mark.parametrize("pan", TEST_PANS)
@pytest.mark.parametrize("separator", ["", " ", "-"])
def test_a_card_number_is_masked_as_people_type_it(pan, separator):
    typed = _typed(pan, separator)
    assert typed.replace(" ", "").replace("-", "") == pan
    assert _masked(f"paid with {typed}, thanks") == f"paid with {REDACTED}, thanks"
    assert _masked(f"card={typed};") == f"card={REDACTED};"
    assert _masked(typed, key="note") == REDACTED
    assert _masked(f"({typed})") == f"({REDACTED})"


def test_uuids_hex_ids_and_stripe_ids_are_never_touched():
    rng = random.Random(20261202)
    alphanumeric = string.ascii_letters + string.digits
    ids = []
    for _ in range(20000):
        request_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        ids += [str(request_id), request_id.hex, str(request_id).upper()]
    for prefix in ("pi", "evt", "ch", "re", "cus", "cs_test", "sub", "in"):
        ids += [f"{prefix}_{''.join(rng.choices(alphanumeric, k=24))}" for _ in range(2000)]
        ids += [f"{prefix}_{''.join(rng.choices(string.digits, k=rng.randint(13, 19)))}" for _ in range(500)]
    ids += [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    changed = [
        value
        for value in ids
        if _masked(value, key="request_id") != value
        or _masked(f"request {value} done") != f"request {value} done"
    ]
    assert changed == []


def test_a_card_number_beside_a_request_id_is_masked_and_the_request_id_kept():
    # A UUID whose leading digits (77810834-9233-4069-93) pass the Luhn check on their own.
    request_id = "77810834-9233-4069-93ac-2012012f27b4"
    event = redact(
        None, "info", {"event": f"{request_id} paid with 4242 4242 4242 4242", "request_id": request_id}
    )
    assert event == {"event": f"{request_id} paid with {REDACTED}", "request_id": request_id}


def test_long_numbers_that_are_not_card_numbers_stay():
    assert _masked("999 cents at 1732619283001") == "999 cents at 1732619283001"  # fails the Luhn check
    assert _masked("order 4242424242424242424242") == "order 4242424242424242424242"  # 22 digits
    assert _masked("phone 555 0100") == "phone 555 0100"
