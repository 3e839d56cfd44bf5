"""The one definition of pricing zones A-D: each zone's name, default multiplier and World Bank
income group (shared/data/README.md), and the rules every zone row follows."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class ZoneSpec:
    zone: str
    zone_name: str
    multiplier: Decimal
    world_bank_classification: str
    gni_per_capita_threshold: str


ZONES = {
    "A": ZoneSpec("A", "Premium", Decimal("1.00"), "High income", "> $13,935"),
    "B": ZoneSpec("B", "Mid-High", Decimal("0.70"), "Upper middle income", "$4,496 - $13,935"),
    "C": ZoneSpec("C", "Mid-Low", Decimal("0.40"), "Lower middle income", "$1,136 - $4,495"),
    "D": ZoneSpec("D", "Low-Income", Decimal("0.20"), "Low income", "<= $1,135"),
}

ZONE_BY_INCOME_GROUP = {spec.world_bank_classification: spec for spec in ZONES.values()}

ZONE_CHOICES = [(spec.zone, f"{spec.zone} ({spec.zone_name})") for spec in ZONES.values()]


def multiplier_range() -> tuple[Decimal, Decimal]:
    from django.conf import settings

    return Decimal(settings.PRICING_MULTIPLIER_MIN), Decimal(settings.PRICING_MULTIPLIER_MAX)


def multiplier_errors(multiplier) -> list[str]:
    """What is wrong with a multiplier (nothing: []): a decimal with at most two places, in the
    configured range."""
    low, high = multiplier_range()
    if not isinstance(multiplier, Decimal):
        try:
            multiplier = Decimal(str(multiplier))
        except (InvalidOperation, ValueError):
            return ["A decimal number is required."]
    if not multiplier.is_finite():
        return ["A decimal number is required."]
    if not low <= multiplier <= high or multiplier.as_tuple().exponent < -2:
        return [f"Between {low} and {high}, at most two decimal places."]
    return []


def zone_errors(*, zone: str, zone_name: str, pricing_multiplier) -> dict[str, list[str]]:
    """A zone row's zone, name and multiplier checked together (the model, admin, API, importer)."""
    errors: dict[str, list[str]] = {}
    spec = ZONES.get(zone)
    if spec is None:
        errors["zone"] = [f"One of {', '.join(ZONES)}."]
    elif zone_name != spec.zone_name:
        errors["zone_name"] = [f"Zone {zone} is named {spec.zone_name!r}."]
    if problems := multiplier_errors(pricing_multiplier):
        errors["pricing_multiplier"] = problems
    return errors
