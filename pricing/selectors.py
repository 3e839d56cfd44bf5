from decimal import ROUND_HALF_UP, Decimal

from pricing.models import PricingZone


def zone_price_cents(*, base_price_cents: int, multiplier: Decimal) -> int:
    """The one rounding rule for regional prices: base times multiplier, half-up to the minor unit."""
    return int((Decimal(base_price_cents) * multiplier).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def zone_for_country(iso_code: str) -> PricingZone | None:
    return PricingZone.objects.filter(iso_code=iso_code.upper()).first()
