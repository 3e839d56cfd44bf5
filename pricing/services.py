"""Pricing writes: pricing zones (validated, in one transaction, safe under concurrent upserts) and
the news that a plan's features or limits changed, for the apps that follow plans."""

import uuid
from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from jia_payments.core.api.errors import NotFound
from jia_payments.core.api.validation import is_country_code
from jia_payments.core.audit.trail import audit_context
from pricing.income_groups import ZONE_ID_NAMESPACE
from pricing.models import PricingZone

ZONE_FIELDS = (
    "country",
    "zone",
    "zone_name",
    "world_bank_classification",
    "gni_per_capita_threshold",
    "pricing_multiplier",
)
MAX_MULTIPLIER = Decimal("9.99")


def _validated(iso_code: str, values: dict) -> tuple[str, dict]:
    """The upper-cased code and the values, or a ValidationError naming each bad field."""
    iso_code = iso_code.upper()
    errors: dict[str, list[str]] = {}
    if not is_country_code(iso_code):
        errors["iso_code"] = [f"'{iso_code[:10]}' is not an ISO 3166-1 alpha-2 country code."]
    multiplier = values["pricing_multiplier"]
    if not isinstance(multiplier, Decimal) or not multiplier.is_finite():
        errors["pricing_multiplier"] = ["A decimal number is required."]
    elif not Decimal("0") <= multiplier <= MAX_MULTIPLIER or multiplier.as_tuple().exponent < -2:
        errors["pricing_multiplier"] = [f"Between 0.00 and {MAX_MULTIPLIER}, at most two decimal places."]
    try:
        PricingZone(iso_code=iso_code, **values).full_clean(
            exclude=["iso_code", "pricing_multiplier"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return iso_code, values


def pricing_zone_upsert(
    *,
    iso_code: str,
    country: str,
    zone: str,
    zone_name: str,
    pricing_multiplier: Decimal,
    world_bank_classification: str = "",
    gni_per_capita_threshold: str = "",
    reason: str = "",
) -> tuple[PricingZone, bool]:
    """Create or update the zone of one country; returns (zone, created). `reason`: for the audit
    trail."""
    iso_code, values = _validated(
        iso_code,
        {
            "country": country,
            "zone": zone,
            "zone_name": zone_name,
            "world_bank_classification": world_bank_classification,
            "gni_per_capita_threshold": gni_per_capita_threshold,
            "pricing_multiplier": pricing_multiplier,
        },
    )
    with audit_context(reason=reason), transaction.atomic():
        # get_or_create retries the read when a concurrent insert of the same code wins the race.
        pricing_zone, created = PricingZone.objects.select_for_update().get_or_create(
            iso_code=iso_code, defaults={"id": uuid.uuid5(ZONE_ID_NAMESPACE, iso_code), **values}
        )
        if not created:
            for field, value in values.items():
                setattr(pricing_zone, field, value)
            pricing_zone.save(update_fields=[*values, "updated_at"])
    return pricing_zone, created


def pricing_zone_bulk_upsert(*, zones: list[dict], reason: str = "") -> tuple[int, int]:
    """Upsert many zones, all or nothing; returns (created, updated). `reason`: for the audit trail
    of every zone it changes.

    Every zone is checked before anything is written; the errors name the zone by its index.
    """
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for index, zone in enumerate(zones):
        code = str(zone.get("iso_code", "")).upper()
        if code in seen:
            errors[f"[{index}].iso_code"] = [f"{code} is also zone [{seen[code]}] of this request."]
        seen.setdefault(code, index)
        try:
            _validated(code, {field: zone.get(field, "") for field in ZONE_FIELDS})
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors[f"[{index}].{field}"] = messages
    if errors:
        raise ValidationError(errors)
    created_count = updated_count = 0
    with audit_context(reason=reason), transaction.atomic():
        for zone in zones:
            _, created = pricing_zone_upsert(**zone)
            created_count += created
            updated_count += not created
    return created_count, updated_count


def pricing_zone_delete(*, iso_code: str, reason: str = "") -> None:
    with audit_context(reason=reason):
        deleted, _ = PricingZone.objects.filter(iso_code=iso_code.upper()).delete()
    if not deleted:
        raise NotFound("No pricing zone for this country.")


_plan_features_changed_callbacks: list[Callable[..., None]] = []


def on_plan_features_changed(callback: Callable[..., None]) -> None:
    """Call `callback(plan_id=...)` whenever a plan's features or usage limits change (an app that
    follows plans registers it in its AppConfig.ready; pricing imports no app above it)."""
    if callback not in _plan_features_changed_callbacks:
        _plan_features_changed_callbacks.append(callback)


def plan_features_changed(*, plan_id: str) -> None:
    """A plan's features or usage limits changed: tell every app that follows plans."""
    for callback in _plan_features_changed_callbacks:
        callback(plan_id=plan_id)
