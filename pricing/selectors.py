from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from django.db.models import OuterRef, QuerySet, Subquery

from jia_payments.core.api.errors import NotFound
from pricing.models import Plan, PricingZone
from pricing.money import stripe_minimum_charge

ZONE_A_MULTIPLIER = Decimal("1.00")


def zone_price_cents(*, base_price_cents: int, multiplier: Decimal, currency: str) -> int:
    """The one pricing rule for regional prices: base times multiplier, half-up to the minor unit,
    never below Stripe's minimum charge for the currency; a free plan stays free."""
    price = int((Decimal(base_price_cents) * multiplier).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    if base_price_cents == 0:
        return 0
    return max(price, stripe_minimum_charge(currency))


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
    zone = zone_for_country(iso_code=iso_code)
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
