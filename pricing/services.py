from decimal import Decimal

from django.db import transaction

from pricing.models import PricingZone

ZONE_FIELDS = (
    "country",
    "zone",
    "zone_name",
    "world_bank_classification",
    "gni_per_capita_threshold",
    "pricing_multiplier",
)


def pricing_zone_upsert(
    *,
    iso_code: str,
    country: str,
    zone: str,
    zone_name: str,
    pricing_multiplier: Decimal,
    world_bank_classification: str = "",
    gni_per_capita_threshold: str = "",
) -> tuple[PricingZone, bool]:
    """Create or update the zone of one country; returns (zone, created)."""
    values = {
        "country": country,
        "zone": zone,
        "zone_name": zone_name,
        "world_bank_classification": world_bank_classification,
        "gni_per_capita_threshold": gni_per_capita_threshold,
        "pricing_multiplier": pricing_multiplier,
    }
    with transaction.atomic():
        pricing_zone, created = PricingZone.objects.select_for_update().get_or_create(
            iso_code=iso_code.upper(), defaults=values
        )
        if not created:
            for field, value in values.items():
                setattr(pricing_zone, field, value)
            pricing_zone.full_clean()
            pricing_zone.save()
    return pricing_zone, created


def pricing_zone_bulk_upsert(*, zones: list[dict]) -> tuple[int, int]:
    """Upsert many zones, all or nothing; returns (created, updated)."""
    created_count = updated_count = 0
    with transaction.atomic():
        for zone in zones:
            _, created = pricing_zone_upsert(**zone)
            created_count += created
            updated_count += not created
    return created_count, updated_count
