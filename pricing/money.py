"""Amounts are integers in the currency's minor unit (API.md); this turns them into major units.

Most currencies have 2 decimals; Stripe lists these as zero-decimal (an amount of 500 JPY is
¥500) and these as three-decimal (Stripe docs, "Supported currencies").
"""

from decimal import Decimal

ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
)  # fmt: skip
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


def minor_unit_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def format_major_units(amount: int, currency: str) -> str:
    """`format_major_units(1999, "USD")` is "19.99"; `format_major_units(500, "JPY")` is "500"."""
    exponent = minor_unit_exponent(currency)
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"
