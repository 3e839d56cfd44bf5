"""Strict input for every API write: serializer base and fields the apps share.

- `StrictSerializer` rejects fields it does not know (a typo is an error, not silently ignored).
- `StrictQuery` reads query parameters as given: `?status=` is an empty status (400), not "any".
- `StrictIntegerField` takes JSON integers only (`12`, or `12.0`, an integer to JSON Schema): no
  fractions, strings (`"12"`) or booleans.
- `StrictCharField` takes JSON strings only, as sent (no trimming: what the schema's lengths and
  patterns say is what is checked), without NUL characters (PostgreSQL text cannot hold them).
- The identifier rules, each defined here once: feature codes and plan ids (`FEATURE_CODE`,
  `FeatureCodeField`, the models' `CODE` validator), user ids (`UserIdField`, `is_plain_user_id`)
  and currencies (`CurrencyField`, the models' `CURRENCY_CODE` validator).
- `CurrencyField`: an ISO 4217 currency code from pycountry's list (funds, metals and test codes
  excluded), in any case, upper-cased.
- `CountryCodeField`: an ISO 3166-1 alpha-2 code that exists (plus `XK`, Kosovo, which the World
  Bank and our pricing zones use), in any case, upper-cased.
- Each field's `schema_pattern` is the ECMA regex the OpenAPI schema publishes for it
  (jia_payments/core/api/openapi.py), made from the same rule.
- `JSONObjectField`: a JSON object of bounded encoded size.
- `MultiplierField`: a decimal 0.00 .. 9.99 with at most two places.
"""

import json
import re
from decimal import Decimal

import pycountry
from django.core.validators import RegexValidator, URLValidator
from rest_framework import serializers

from jia_payments.core.api.parsers import has_text_matching

# ISO 4217 codes that are not money a customer pays in: funds, precious metals, SDR-style units,
# the testing code and "no currency".
NOT_MONEY = frozenset(
    {"BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "XAD", "XAG", "XAU", "XBA", "XBB"}
    | {"XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)
CURRENCY_CODES = frozenset(c.alpha_3 for c in pycountry.currencies) - NOT_MONEY
# XK: Kosovo, user-assigned in ISO 3166 but used by the World Bank, Stripe and our seed data.
COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}

DEFAULT_JSON_OBJECT_MAX_BYTES = 4096

# Feature codes and plan ids: lower-case letters, digits, '-' and '_', not starting with a sign.
FEATURE_CODE_MAX_LENGTH = 64
FEATURE_CODE = re.compile(r"[a-z0-9][a-z0-9_-]*")  # matched whole (fullmatch)
FEATURE_CODE_PATTERN = f"^{FEATURE_CODE.pattern}$"
_PLAIN_FEATURE_CODE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{FEATURE_CODE_MAX_LENGTH - 1}}}")
# User ids are the token issuer's subject: any text up to USER_ID_MAX_LENGTH. Most are "plain"
# (only the characters below), which the check's fast path and the cache keys rely on.
USER_ID_MAX_LENGTH = 255
_PLAIN_USER_ID_CHARACTERS = "A-Za-z0-9_.:@-"

# The models' validators (the same rules, for admin forms and full_clean).
CURRENCY_CODE = RegexValidator(r"^[A-Z]{3}$", "An upper-case ISO 4217 code, e.g. USD.")
ISO_COUNTRY_CODE = RegexValidator(r"^[A-Z]{2}$", "Two upper-case letters, e.g. IN.")
CODE = RegexValidator(FEATURE_CODE_PATTERN, "Lower-case letters, digits, '-' and '_'.")
# Text columns cannot hold U+0000 (PostgreSQL); every string the API takes is refused with one.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def codes_pattern(codes) -> str:
    """An ECMA/Python regex matching exactly these upper-case ASCII codes, in any letter case:
    the published form of a membership rule (a trie of character classes)."""

    def alternatives(words: list[str]) -> str:
        if all(len(word) == 1 for word in words):
            return "[" + "".join(f"{c}{c.lower()}" for c in sorted(words)) + "]"
        heads: dict[str, list[str]] = {}
        for word in sorted(words):
            heads.setdefault(word[0], []).append(word[1:])
        parts = [f"[{head}{head.lower()}]{alternatives(rest)}" for head, rest in heads.items()]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return f"^{alternatives(sorted(codes))}$"


def is_plain_feature_code(value) -> bool:
    """A valid feature code of at most FEATURE_CODE_MAX_LENGTH characters."""
    return type(value) is str and _PLAIN_FEATURE_CODE.fullmatch(value) is not None


def is_plain_user_id(value, *, max_length: int = USER_ID_MAX_LENGTH) -> bool:
    """A user id of 1 to `max_length` characters, letters, digits and `_.:@-` only."""
    return type(value) is str and 0 < len(value) <= max_length and _PLAIN_USER_ID.fullmatch(value) is not None


_PLAIN_USER_ID = re.compile(f"[{_PLAIN_USER_ID_CHARACTERS}]+")


def is_currency_code(value: str) -> bool:
    return value in CURRENCY_CODES


def is_country_code(value: str) -> bool:
    return value in COUNTRY_CODES


class StrictIntegerField(serializers.IntegerField):
    """A JSON number without a fraction: `12`, or `12.0`, which JSON Schema's `integer` (the
    OpenAPI schema) calls an integer too. Strings and booleans are refused."""

    default_error_messages = {"invalid": "A whole number (JSON integer) is required."}

    def to_internal_value(self, data):
        if type(data) is float and data.is_integer() and abs(data) <= 2**53:
            data = int(data)
        if type(data) is not int:  # bool is an int subclass: refused too
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "A string is required."}
    schema_pattern: str | None = NO_NUL_PATTERN

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class FeatureCodeField(StrictCharField):
    default_error_messages = {"format": "A feature code: lower-case letters, digits, '-' and '_'."}
    schema_pattern = FEATURE_CODE_PATTERN

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", FEATURE_CODE_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not FEATURE_CODE.fullmatch(value):
            self.fail("format")
        return value


class UserIdField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", USER_ID_MAX_LENGTH)
        super().__init__(**kwargs)


# http(s) URLs as the schema publishes them, a subset of what Django's URLValidator accepts
# (both are checked): a lower-case scheme, a host name of up to three labels and a TLD, localhost or
# an IPv4 address, an optional port, then printable ASCII.
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,60}[A-Za-z0-9])?"  # three labels and a TLD: <= 253
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
WEB_URL_PATTERN = (
    rf"^https?://(?:(?:{_LABEL}\.){{1,3}}[A-Za-z]{{2,63}}|localhost|{_OCTET}(?:\.{_OCTET}){{3}})"
    r"(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
)
_WEB_URL = re.compile(WEB_URL_PATTERN)


class WebUrlField(StrictCharField):
    """An http(s) URL to send a browser to (`WEB_URL_PATTERN`, and Django's URLValidator)."""

    default_error_messages = {"invalid_url": "Enter a valid http(s) URL."}
    schema_pattern = WEB_URL_PATTERN

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(URLValidator(message=self.error_messages["invalid_url"]))

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not _WEB_URL.match(value):
            self.fail("invalid_url")
        return value


class CurrencyField(StrictCharField):
    default_error_messages = {"unknown": "'{value}' is not an ISO 4217 currency code."}
    schema_pattern = codes_pattern(CURRENCY_CODES)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("help_text", "ISO 4217 code, upper case, e.g. USD")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        value = value.upper() if value.isascii() else value  # "\u017f".upper() is "S"
        if not is_currency_code(value):
            self.fail("unknown", value=value[:10])
        return value


class CountryCodeField(StrictCharField):
    default_error_messages = {"unknown": "'{value}' is not an ISO 3166-1 alpha-2 country code."}
    schema_pattern = codes_pattern(COUNTRY_CODES)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2)
        kwargs.setdefault("min_length", 2)
        kwargs.setdefault("help_text", "ISO 3166-1 alpha-2 code, e.g. IN")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        value = value.upper() if value.isascii() else value  # "\u0131".upper() is "I"
        if not is_country_code(value):
            self.fail("unknown", value=value)
        return value


_NUL = re.compile("\x00")


class JSONObjectField(serializers.JSONField):
    default_error_messages = {
        "not_object": "A JSON object is required.",
        "too_large": "At most {max_bytes} bytes of JSON.",
        # PostgreSQL's jsonb cannot hold U+0000 in a key or a string (it was a 500)
        "null_characters": "Null characters are not allowed.",
    }

    def __init__(self, *, max_bytes: int = DEFAULT_JSON_OBJECT_MAX_BYTES, **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        if has_text_matching(data, _NUL):
            self.fail("null_characters")
        if len(json.dumps(data, separators=(",", ":")).encode()) > self.max_bytes:
            self.fail("too_large", max_bytes=self.max_bytes)
        return data


MULTIPLIER_TEXT = re.compile(r"[0-9](?:\.[0-9]{1,2})?")


def multiplier_forms(low: Decimal, high: Decimal) -> list[str]:
    """Every text a multiplier in [low, high] may be written as: "0.7", "0.70", "1", "1.0", "1.00"."""
    forms = []
    for cents in range(int(low * 100), int(high * 100) + 1):
        units, hundredths = divmod(cents, 100)
        forms.append(f"{units}.{hundredths:02d}")
        if hundredths % 10 == 0:
            forms.append(f"{units}.{hundredths // 10}")
        if hundredths == 0:
            forms.append(f"{units}")
    return forms


class MultiplierField(serializers.DecimalField):
    """Pricing multiplier: "0.70" in and out (a JSON number is accepted on input). Text is a
    digit, optionally with one or two decimals ("0.7", "0.70", "1"): no sign, exponent or spaces."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", Decimal("0.00"))
        kwargs.setdefault("max_value", Decimal("9.99"))
        super().__init__(max_digits=5, decimal_places=2, **kwargs)  # the column's digits

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not MULTIPLIER_TEXT.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictQuery(serializers.Serializer):
    """Query parameters: one given empty (`?status=`) is that value, refused like any other the
    schema does not allow, never read as "no filter". The last value of a repeated one counts."""

    def __init__(self, instance=None, data=serializers.empty, **kwargs):
        if hasattr(data, "getlist"):  # a QueryDict: DRF would read "" as "not given"
            data = {name: data[name] for name in data}
        super().__init__(instance, data, **kwargs)


class StrictSerializer(serializers.Serializer):
    """A serializer for writes that refuses fields it does not declare as writable."""

    default_error_messages = {"unknown_field": "Unknown field."}
    # Fields of the resource's own representation that a write may send back unchanged (GET,
    # modify, PUT) and that are not written: its id and timestamps. Accepted and ignored.
    echoed_fields: frozenset[str] = frozenset()
    # Rules between fields, for the OpenAPI schema (a request must match one of these JSON
    # Schemas): the serializer's own validation checks the same.
    schema_variants: list[dict] = []

    def to_internal_value(self, data):
        unknown = []
        if isinstance(data, dict):
            writable = {
                name for name, field in self.fields.items() if not field.read_only
            } | self.echoed_fields
            unknown = sorted(str(name) for name in data if name not in writable)
        errors = {name: [self.error_messages["unknown_field"]] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if not errors or not isinstance(error.detail, dict):
                raise
            errors.update(error.detail)
        if errors:
            raise serializers.ValidationError(errors)
        return value
