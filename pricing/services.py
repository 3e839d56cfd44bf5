"""Pricing writes: pricing zones (validated, in one transaction, safe under concurrent upserts) and
the news that a plan's features or limits changed, for the apps that follow plans."""

import uuid
from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jia_payments.core.api.errors import InvalidFields, NotFound
from jia_payments.core.api.validation import is_country_code
from jia_payments.core.audit.trail import audit_context, record_changes
from pricing.income_groups import ZONE_ID_NAMESPACE
from pricing.models import Plan, PricingZone
from pricing.zones import ZONES, multiplier_errors

ZONE_FIELDS = (
    "country",
    "zone",
    "zone_name",
    "world_bank_classification",
    "gni_per_capita_threshold",
    "pricing_multiplier",
)


def _validated(iso_code: str, values: dict) -> tuple[str, dict]:
    """The upper-cased code and the values, or a ValidationError naming each bad field."""
    iso_code = iso_code.upper()
    errors: dict[str, list[str]] = {}
    if not is_country_code(iso_code):
        errors["iso_code"] = [f"'{iso_code[:10]}' is not an ISO 3166-1 alpha-2 country code."]
    multiplier = values["pricing_multiplier"]
    if not isinstance(multiplier, Decimal):
        errors["pricing_multiplier"] = ["A decimal number is required."]
    try:
        # Field rules, then the zone rules (PricingZone.clean: name and multiplier range).
        PricingZone(iso_code=iso_code, **values).full_clean(
            exclude=["iso_code", *errors], validate_unique=False, validate_constraints=False
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

    Every zone is checked before anything is written; the errors name the zone by its index. A
    code given twice, when each zone is valid, is InvalidFields (422): no schema can say it.
    """
    errors: dict[str, list[str]] = {}
    repeated: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for index, zone in enumerate(zones):
        code = str(zone.get("iso_code", "")).upper()
        if code in seen:
            repeated[f"[{index}].iso_code"] = [f"{code} is also zone [{seen[code]}] of this request."]
        seen.setdefault(code, index)
        try:
            _validated(code, {field: zone.get(field, "") for field in ZONE_FIELDS})
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors[f"[{index}].{field}"] = messages
    if errors:
        raise ValidationError({**errors, **repeated})
    if repeated:
        raise InvalidFields("A country is given twice.", errors=repeated)
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


def pricing_zones_import(*, rows, reason: str) -> tuple[int, int]:
    """Apply a World Bank classification (pricing.income_groups.ZoneRow rows, from the command or
    the admin's upload); returns (created, updated)."""
    return pricing_zone_bulk_upsert(zones=[row.values() for row in rows], reason=reason)


def pricing_zone_set_multiplier(*, zone: str, multiplier: Decimal, reason: str) -> int:
    """Give every country of `zone` this multiplier, in one transaction; returns how many changed."""
    errors = {}
    if zone not in ZONES:
        errors["zone"] = [f"One of {', '.join(ZONES)}."]
    if problems := multiplier_errors(multiplier):
        errors["pricing_multiplier"] = problems
    if not reason.strip():
        errors["reason"] = ["Required."]
    if errors:
        raise ValidationError(errors)
    with audit_context(reason=reason), transaction.atomic():
        before = list(
            PricingZone.objects.select_for_update()
            .filter(zone=zone)
            .exclude(pricing_multiplier=multiplier)
            .values_list("pk", "iso_code", "pricing_multiplier")
        )
        PricingZone.objects.filter(pk__in=[pk for pk, _, _ in before]).update(
            pricing_multiplier=multiplier, updated_at=timezone.now()
        )
        record_changes(
            PricingZone,
            [(pk, f"{iso} ({zone})", {"pricing_multiplier": (old, multiplier)}) for pk, iso, old in before],
        )
    return len(before)


# --- plans -------------------------------------------------------------------------------------


def plan_save(*, plan: Plan, feature_codes: list[str], reason: str = "") -> Plan:
    """Create or update a plan (already validated, e.g. by the admin form) and its features, in one
    transaction; when its features or usage limits changed, the apps that follow plans are told
    (entitlements re-syncs the rows the plan granted, after commit)."""
    with audit_context(reason=reason), transaction.atomic():
        before = Plan.objects.select_for_update().filter(pk=plan.pk).first() if plan.pk else None
        old_features = set(before.features.values_list("code", flat=True)) if before else set()
        plan.save()
        plan.features.set(feature_codes)
        changed = before is not None and (
            old_features != set(feature_codes) or before.usage_limits != plan.usage_limits
        )
        if changed:
            plan_features_changed(plan_id=plan.pk)
    return plan


def plan_deactivate(*, plan_id: str, reason: str = "") -> bool:
    """Stop offering a plan (what it sold or granted stays); answers whether it was active."""
    with audit_context(reason=reason), transaction.atomic():
        plan = Plan.objects.select_for_update().filter(pk=plan_id).first()
        if plan is None:
            raise NotFound("No such plan.")
        if not plan.active:
            return False
        plan.active = False
        plan.save(update_fields=["active", "updated_at"])
    return True
