"""The rows the check works on, as its one query reads them: the user's own and their families',
each once, with the fields the answer is made of."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from entitlements import services
from entitlements.models import Entitlement, Family
from entitlements.selectors import AccessRow, _answer, entitlement_check, load_access_rows
from entitlements.tests.factories import EntitlementFactory, FamilyFactory, FamilyMemberFactory, plan_with
from pricing.models import Feature
from pricing.tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db

ENDS = datetime(2031, 5, 17, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    settings.ENTITLEMENTS_CACHE_ALIAS = "nothing"


def _row(entitlement: Entitlement) -> AccessRow:
    entitlement.refresh_from_db()
    expires = None if entitlement.expires_at is None else entitlement.expires_at.timestamp()
    ends = (
        entitlement.updated_at.timestamp()
        if entitlement.status == "cancelled" or expires is None
        else expires
    )
    return AccessRow(
        str(entitlement.pk),
        entitlement.feature_id,
        entitlement.plan_id,
        None if entitlement.family_id is None else str(entitlement.family_id),
        entitlement.status,
        expires,
        ends,
        entitlement.usage_limits,
    )


def test_own_rows_and_the_familys_each_once_and_nobody_elses():
    plan = plan_with(["calendar", "vault"], max_users=3, usage_limits={"storage_gb": 200, "seats": None})
    family_rows = services.entitlements_grant_plan(
        user_id="owner", plan=plan, subscription_id="s1", expires_at=ENDS
    )
    family = Family.objects.get()
    services.family_member_add(family_id=family.pk, user_id="kid")
    lists = FeatureFactory(code="lists")
    own_lifetime = EntitlementFactory(user_id="kid", feature=lists, expires_at=None, usage_limits={"n": 3})
    own_cancelled = EntitlementFactory(user_id="kid", feature=lists, status="cancelled", expires_at=ENDS)
    own_expired = EntitlementFactory(
        user_id="kid", feature=lists, status="expired", expires_at=ENDS - timedelta(days=400)
    )
    EntitlementFactory(user_id="stranger", feature=lists)
    EntitlementFactory(user_id="stranger", feature=lists, family=FamilyFactory())

    kid = [*map(_row, [*family_rows, own_lifetime, own_cancelled, own_expired])]
    assert sorted(load_access_rows(user_id="kid")) == sorted(kid)
    assert sorted(load_access_rows(user_id="owner")) == sorted(map(_row, family_rows))  # once, not twice
    assert load_access_rows(user_id="nobody") == ()
    [calendar_row] = [r for r in load_access_rows(user_id="kid") if r.feature_code == "calendar"]
    assert calendar_row.expires_at == ENDS.timestamp() == calendar_row.ended_at
    assert calendar_row.family_id == str(family.pk)
    assert calendar_row.usage_limits == {"storage_gb": 200, "seats": None}


def test_a_member_of_two_families_gets_both_familys_rows():
    first, second = FamilyFactory(), FamilyFactory()
    feature = FeatureFactory(code="calendar")
    rows = [EntitlementFactory(user_id=f.owner_user_id, feature=feature, family=f) for f in (first, second)]
    for family in (first, second):
        FamilyMemberFactory(family=family, user_id="kid")
    assert sorted(load_access_rows(user_id="kid")) == sorted(map(_row, rows))


def test_own_and_family_rows_of_one_feature_the_longest_lasting_grants_and_is_the_source():
    plan = plan_with(["calendar"], max_users=3, usage_limits={"storage_gb": 20})
    services.entitlements_grant_plan(
        user_id="owner", plan=plan, subscription_id="s1", expires_at=timezone.now() + timedelta(days=5)
    )
    family = Family.objects.get()
    services.family_member_add(family_id=family.pk, user_id="kid")
    feature = Feature.objects.get(code="calendar")
    longer = EntitlementFactory(
        user_id="kid", feature=feature, expires_at=ENDS, usage_limits={"storage_gb": 5, "exports": True}
    )
    EntitlementFactory(user_id="kid", feature=feature, status="cancelled", expires_at=None)
    EntitlementFactory(user_id="kid", feature=feature, expires_at=timezone.now() - timedelta(days=1))

    assert entitlement_check(user_id="kid", feature_code="calendar") == {
        "user_id": "kid",
        "feature_code": "calendar",
        "has_access": True,
        "reason": "active",
        "expires_at": ENDS,
        "usage_limits": {"storage_gb": 20, "exports": True},
        "source": {"entitlement_id": str(longer.pk), "plan_id": longer.plan_id, "family_id": None},
    }


def test_a_family_row_ending_last_explains_the_members_answer():
    payment = uuid.uuid4()
    plan = plan_with(["calendar"], max_users=3, billing_cycle="one_time")
    services.entitlements_grant_plan(user_id="owner", plan=plan, payment_id=payment)
    services.family_member_add(family_id=Family.objects.get().pk, user_id="kid")
    EntitlementFactory(
        user_id="kid",
        feature=Feature.objects.get(code="calendar"),
        status="expired",
        expires_at=timezone.now() - timedelta(days=9),
    )
    assert entitlement_check(user_id="kid", feature_code="calendar")["reason"] == "active"
    assert entitlement_check(user_id="kid", feature_code="calendar")["expires_at"] is None  # lifetime

    services.entitlements_cancel_for_payment(payment_id=payment, reason="refund")
    answer = entitlement_check(user_id="kid", feature_code="calendar")
    assert (answer["has_access"], answer["reason"], answer["expires_at"]) == (False, "revoked", None)


def test_rows_that_grant_alike_give_the_same_answer_in_any_order():
    ends = ENDS.timestamp()
    own = AccessRow(
        "9" * 8 + "-0000-4000-8000-" + "0" * 12, "vault", "premium", None, "active", ends, ends, {"gb": 10}
    )
    family = AccessRow(
        "1" * 8 + "-0000-4000-8000-" + "0" * 12,
        "vault",
        "family",
        "2" * 8 + "-0000-4000-8000-" + "0" * 12,
        "active",
        ends,
        ends,
        {"seats": 5, "gb": 20},
    )
    now = timezone.now().timestamp()
    first, second = _answer("kid", "vault", [own, family], now), _answer("kid", "vault", [family, own], now)
    assert first == second
    assert (
        list(first["usage_limits"].items())
        == list(second["usage_limits"].items())
        == [("gb", 20), ("seats", 5)]
    )
    assert first["source"] == {"entitlement_id": own.entitlement_id, "plan_id": "premium", "family_id": None}
