import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from django.db.models import OuterRef, QuerySet, Subquery

from jia_payments.core.api.errors import NotFound
from pricing.models import Plan, PricingZone
from pricing.money import (  # noqa: F401  (format_*, parse_*: for other apps)
    format_major_units,
    format_money,
    parse_major_units,
    stripe_minimum_charge,
)

ZONE_A_MULTIPLIER = Decimal("1.00")


def zone_price_cents(*, base_price_cents: int, multiplier: Decimal, currency: str) -> int:
    """The one pricing rule for regional prices: base times multiplier, half-up to the minor unit,
    never below Stripe's minimum charge for the currency; a free plan stays free."""
    price = int((Decimal(base_price_cents) * multiplier).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    if base_price_cents == 0:
        return 0
    return max(price, stripe_minimum_charge(currency))


ISO_CODE_ANY_CASE = re.compile("[A-Za-z]{2}")


def zone_for_country(*, iso_code: str) -> PricingZone | None:
    return PricingZone.objects.filter(iso_code=iso_code.upper()).first()


def active_plans() -> QuerySet[Plan]:
    return Plan.objects.filter(active=True).prefetch_related("features").order_by("price_cents", "id")


def active_plan(*, plan_id: str) -> Plan:
    plan = active_plans().filter(pk=plan_id).first()
    if plan is None:
        raise NotFound("No such plan.")
    return plan


def pricing_zones(*, zone: str | None = None, country: str | None = None, iso_code: str | None = None):
    zones = PricingZone.objects.order_by("iso_code")
    if zone is not None:
        zones = zones.filter(zone=zone)
    if country is not None:
        zones = zones.filter(country__iexact=country)
    if iso_code is not None:
        zones = zones.filter(iso_code=iso_code.upper())
    return zones


def pricing_zone_get(*, iso_code: str) -> PricingZone:
    """A country's zone by its code in any case (REST's URL takes two letters only; gRPC's field
    anything: text PostgreSQL cannot compare, such as NUL, is no country either)."""
    zone = zone_for_country(iso_code=iso_code) if ISO_CODE_ANY_CASE.fullmatch(iso_code) else None
    if zone is None:
        raise NotFound("No pricing zone for this country.")
    return zone


@dataclass(frozen=True)
class PriceQuote:
    plan_id: str
    country: str
    zone: str | None
    zone_name: str | None
    multiplier: Decimal
    base_price_cents: int
    price_cents: int
    currency: str


def plan_prices(*, country: str, plan_id: str | None = None) -> list[PriceQuote]:
    """Each active plan's price in `country`; a country without a zone pays the zone-A price."""
    plans = [active_plan(plan_id=plan_id)] if plan_id is not None else list(active_plans())
    zone = zone_for_country(iso_code=country)
    multiplier = zone.pricing_multiplier if zone else ZONE_A_MULTIPLIER
    return [
        PriceQuote(
            plan_id=plan.id,
            country=country.upper(),
            zone=zone.zone if zone else None,
            zone_name=zone.zone_name if zone else None,
            multiplier=multiplier,
            base_price_cents=plan.price_cents,
            price_cents=zone_price_cents(
                base_price_cents=plan.price_cents, multiplier=multiplier, currency=plan.currency
            ),
            currency=plan.currency,
        )
        for plan in plans
    ]


def plan_period_end(*, billing_cycle: str, starts_at: datetime) -> datetime | None:
    """Calendar-correct end of one billing period: 31 Jan + 1 month = end of February."""
    if billing_cycle == Plan.BillingCycle.MONTHLY:
        return starts_at + relativedelta(months=1)
    if billing_cycle == Plan.BillingCycle.YEARLY:
        return starts_at + relativedelta(years=1)
    return None


def plan_find(*, plan_id: str) -> Plan | None:
    """The plan, active or retired (a grant honours the plan it was sold under); None if unknown."""
    return Plan.objects.filter(pk=plan_id).first()


def plan_feature_codes(*, plan: Plan) -> list[str]:
    return list(plan.features.values_list("code", flat=True))


def plan_has_feature(*, plan: Plan, feature_code: str) -> bool:
    return plan.features.filter(code=feature_code).exists()


def plan_max_users_subquery(*, plan_ref: str = "plan_id") -> Subquery:
    """The `max_users` of the plan the outer row's `plan_ref` column points at, for a conditional
    UPDATE that compares a seat counter with it in the database."""
    return Subquery(Plan.objects.filter(pk=OuterRef(plan_ref)).order_by().values("max_users")[:1])


@dataclass(frozen=True)
class PlanPriceChange:
    plan_id: str
    plan_name: str
    currency: str
    before_cents: int
    after_cents: int


def _plan_price_changes(before: Decimal, after: Decimal) -> list[PlanPriceChange]:
    return [
        PlanPriceChange(
            plan_id=plan.id,
            plan_name=plan.name,
            currency=plan.currency,
            before_cents=zone_price_cents(
                base_price_cents=plan.price_cents, multiplier=before, currency=plan.currency
            ),
            after_cents=zone_price_cents(
                base_price_cents=plan.price_cents, multiplier=after, currency=plan.currency
            ),
        )
        for plan in Plan.objects.filter(active=True).order_by("price_cents", "id")
    ]


@dataclass(frozen=True)
class ZoneMultiplierPreview:
    zone: str
    countries: int  # rows in the zone
    changing: int  # rows whose multiplier is not already the new one
    current: list[Decimal]  # the multipliers the zone's rows have now
    plans: list[PlanPriceChange]


def zone_multiplier_preview(*, zone: str, multiplier: Decimal) -> ZoneMultiplierPreview:
    """What setting every country of `zone` to `multiplier` changes: how many, and each active
    plan's price there (from the zone's most common multiplier now)."""
    from django.db.models import Count

    counts = list(
        PricingZone.objects.filter(zone=zone)
        .values_list("pricing_multiplier")
        .annotate(n=Count("id"))
        .order_by("-n", "pricing_multiplier")
    )
    countries = sum(n for _, n in counts)
    changing = sum(n for value, n in counts if value != multiplier)
    before = counts[0][0] if counts else multiplier
    return ZoneMultiplierPreview(
        zone=zone,
        countries=countries,
        changing=changing,
        current=[value for value, _ in counts],
        plans=_plan_price_changes(before, multiplier),
    )


@dataclass(frozen=True)
class ZoneImportChange:
    kind: str  # "new", "changed" or "absent" (in the database, not in the file: kept)
    iso_code: str
    country: str
    zone_before: str | None
    zone_after: str | None
    multiplier_before: Decimal | None
    multiplier_after: Decimal | None
    plans: list[PlanPriceChange]


def income_groups_changes(*, rows) -> list[ZoneImportChange]:
    """What importing these zone rows (pricing.income_groups.ZoneRow) would change."""
    current = {zone.iso_code: zone for zone in PricingZone.objects.all()}
    changes, prices = [], {}

    def priced(before, after):
        if (before, after) not in prices:
            prices[before, after] = _plan_price_changes(before, after)
        return prices[before, after]

    for row in rows:
        existing = current.pop(row.iso_code, None)
        if existing is None:
            changes.append(
                ZoneImportChange(
                    "new", row.iso_code, row.country, None, row.zone, None, row.pricing_multiplier,
                    priced(ZONE_A_MULTIPLIER, row.pricing_multiplier),
                )
            )  # fmt: skip
        elif existing.zone != row.zone or existing.pricing_multiplier != row.pricing_multiplier:
            changes.append(
                ZoneImportChange(
                    "changed", row.iso_code, row.country, existing.zone, row.zone,
                    existing.pricing_multiplier, row.pricing_multiplier,
                    priced(existing.pricing_multiplier, row.pricing_multiplier),
                )
            )  # fmt: skip
    for iso_code, zone in sorted(current.items()):
        changes.append(
            ZoneImportChange(
                "absent", iso_code, zone.country, zone.zone, zone.zone, zone.pricing_multiplier,
                zone.pricing_multiplier, [],
            )
        )  # fmt: skip
    return changes


@dataclass(frozen=True)
class ZonePrice:
    zone: str
    zone_name: str
    multiplier: Decimal
    countries: int  # rows of the zone at this multiplier; 0: no row, the definition's default
    price_cents: int


def plan_zone_prices(*, base_price_cents: int, currency: str) -> list[ZonePrice]:
    """A price in every zone from the real zone rows: one line per multiplier the zone's rows
    have (a zone without rows shows its default multiplier)."""
    from django.db.models import Count

    from pricing.zones import ZONES

    found: dict[str, list[tuple[Decimal, int]]] = {}
    for zone, multiplier, count in (
        PricingZone.objects.values_list("zone", "pricing_multiplier")
        .annotate(n=Count("id"))
        .order_by("zone", "-n", "pricing_multiplier")
    ):
        found.setdefault(zone, []).append((multiplier, count))
    return [
        ZonePrice(
            zone=spec.zone,
            zone_name=spec.zone_name,
            multiplier=multiplier,
            countries=count,
            price_cents=zone_price_cents(
                base_price_cents=base_price_cents, multiplier=multiplier, currency=currency
            ),
        )
        for spec in ZONES.values()
        for multiplier, count in found.get(spec.zone, [(spec.multiplier, 0)])
    ]
