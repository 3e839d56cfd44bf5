"""Amounts are integers in the currency's minor unit (API.md); this turns them into major units.

Most currencies have 2 decimals; Stripe lists these as zero-decimal (an amount of 500 JPY is
¥500) and these as three-decimal (Stripe docs, "Supported currencies").
"""

from decimal import Decimal

ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
)  # fmt: skip
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Stripe's minimum charge per currency, in minor units (Stripe docs, "Minimum and maximum charge
# amounts"): a paid plan is never priced below it, or Stripe would refuse the checkout. The fake
# Stripe of the tests (testsupport/localstripe_ext.py) refuses below it too, from this table.
MINIMUM_CHARGE = {
    "USD": 50, "AUD": 50, "BRL": 50, "CAD": 50, "CHF": 50, "EUR": 50, "INR": 50, "NZD": 50,
    "SGD": 50, "GBP": 30, "JPY": 50, "DKK": 250, "HKD": 400, "MXN": 1000, "NOK": 300,
    "PLN": 200, "SEK": 300,
}  # fmt: skip
DEFAULT_MINIMUM_CHARGE = 50


def stripe_minimum_charge(currency: str) -> int:
    return MINIMUM_CHARGE.get(currency.upper(), DEFAULT_MINIMUM_CHARGE)


def minor_unit_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def format_major_units(amount: int, currency: str) -> str:
    """`format_major_units(1999, "USD")` is "19.99"; `format_major_units(500, "JPY")` is "500"."""
    exponent = minor_unit_exponent(currency)
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"
