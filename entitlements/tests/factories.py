from datetime import UTC, datetime

import factory

from entitlements.models import Entitlement, Family, FamilyMember
from pricing.tests.factories import FeatureFactory, PlanFactory

END = datetime(2031, 5, 17, 8, 0, tzinfo=UTC)  # when the rows of the shared fixtures (conftest) end


class FamilyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Family

    owner_user_id = factory.Sequence(lambda n: f"owner_{n}")
    plan = factory.SubFactory(PlanFactory, max_users=6)


class OwnedFamilyFactory(FamilyFactory):
    """A family as a family plan's grant leaves it: the owner holds the first seat."""

    class Meta:
        skip_postgeneration_save = True

    member_count = 1
    owner = factory.RelatedFactory(
        "entitlements.tests.factories.FamilyMemberFactory",
        factory_related_name="family",
        user_id=factory.SelfAttribute("..owner_user_id"),
        role=FamilyMember.Role.OWNER,
    )


class FamilyMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FamilyMember

    family = factory.SubFactory(FamilyFactory)
    user_id = factory.Sequence(lambda n: f"member_{n}")


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entitlement

    user_id = factory.Sequence(lambda n: f"user_{n}")
    feature = factory.SubFactory(FeatureFactory)
    plan = factory.SubFactory(PlanFactory)


def plan_with(codes, **fields):
    """A plan giving these feature codes (features created as needed)."""
    return PlanFactory(features=[FeatureFactory(code=code) for code in codes], **fields)
