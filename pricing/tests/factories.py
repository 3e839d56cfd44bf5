from decimal import Decimal

import factory

from pricing.models import Feature, Plan, PricingZone


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"feature_{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").title())


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        skip_postgeneration_save = True

    id = factory.Sequence(lambda n: f"plan_{n}")
    name = factory.LazyAttribute(lambda o: o.id.replace("_", " ").title())
    billing_cycle = Plan.BillingCycle.MONTHLY
    price_cents = 999
    currency = "USD"
    max_users = 1
    usage_limits = factory.LazyFunction(dict)

    @factory.post_generation
    def features(self, create, extracted, **kwargs):
        if create and extracted:
            self.features.set(extracted)


class PricingZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PricingZone
        django_get_or_create = ("iso_code",)

    iso_code = "IN"
    country = "India"
    zone = "C"
    zone_name = "Mid-Low"
    world_bank_classification = "Lower middle income"
    pricing_multiplier = Decimal("0.40")
