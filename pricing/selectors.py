from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pricing.models import Plan, PricingZone


def zone_price_cents(*, base_price_cents: int, multiplier: Decimal) -> int:
    """The one rounding rule for regional prices: base times multiplier, half-up to the minor unit."""
    return int((Decimal(base_price_cents) * multiplier).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def zone_for_country(iso_code: str) -> PricingZone | None:
    return PricingZone.objects.filter(iso_code=iso_code.upper()).first()


# Stripe's minimum charge per currency, in minor units (Stripe docs, "Minimum and maximum charge
# amounts"); a paid plan is never priced below it, or Stripe would refuse the checkout.
MINIMUM_CHARGE = {
    "USD": 50, "AUD": 50, "BRL": 50, "CAD": 50, "CHF": 50, "EUR": 50, "INR": 50, "NZD": 50,
    "SGD": 50, "GBP": 30, "JPY": 50, "DKK": 250, "HKD": 400, "MXN": 1000, "NOK": 300,
    "PLN": 200, "SEK": 300,
}  # fmt: skip


@dataclass(frozen=True)
class PriceQuote:
    plan_id: str
    country: str  # upper-case ISO code as asked, "" when none was given
    zone: str | None  # None: no zone for the country, priced as zone A
    zone_name: str | None
    multiplier: Decimal
    base_price_cents: int
    price_cents: int
    currency: str


def plan_price_quote(*, plan: Plan, country: str | None) -> PriceQuote:
    """A plan's price in a country: zone multiplier, half-up rounding, Stripe's minimum charge.

    An unknown (or no) country is priced as zone A (multiplier 1) with `zone` None. A free plan
    stays free.
    """
    country = (country or "").strip().upper()
    pricing_zone = zone_for_country(country) if len(country) == 2 else None
    multiplier = pricing_zone.pricing_multiplier if pricing_zone else Decimal("1.00")
    price = zone_price_cents(base_price_cents=plan.price_cents, multiplier=multiplier)
    if plan.price_cents > 0:
        price = max(price, MINIMUM_CHARGE.get(plan.currency, 50))
    return PriceQuote(
        plan_id=plan.pk,
        country=country,
        zone=pricing_zone.zone if pricing_zone else None,
        zone_name=pricing_zone.zone_name if pricing_zone else None,
        multiplier=multiplier,
        base_price_cents=plan.price_cents,
        price_cents=price,
        currency=plan.currency,
    )


def plan_get(*, plan_id: str) -> Plan | None:
    """An active plan, or None."""
    return Plan.objects.filter(pk=plan_id, active=True).first()
