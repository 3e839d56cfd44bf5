"""The product's mapping of World Bank income groups to pricing zones (shared/data/README.md)."""

from dataclasses import dataclass
from decimal import Decimal


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
