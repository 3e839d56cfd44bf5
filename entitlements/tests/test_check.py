"""The access check: correct and self-explaining, directly or through a family.

These tests are about the answers, so they read the database every time (a cache that stores
nothing); test_cache.py proves the cache gives the same answers.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from entitlements import services
from entitlements.models import Family
from entitlements.selectors import entitlement_check, entitlement_check_many
from entitlements.tests.factories import EntitlementFactory, plan_with
from pricing.tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    settings.ENTITLEMENTS_CACHE_ALIAS = "nothing"


def _check(user_id="u1", feature_code="calendar"):
    return entitlement_check(user_id=user_id, feature_code=feature_code)


def _days(n: float):
    return timezone.now() + timedelta(days=n)


def test_nothing_held_is_no_entitlement():
    assert _check() == {
        "user_id": "u1",
        "feature_code": "calendar",
        "has_access": False,
        "reason": "no_entitlement",
        "expires_at": None,
        "usage_limits": {},
        "source": None,
    }


def test_an_active_row_grants_access_and_names_its_source():
    plan = plan_with(["calendar"], usage_limits={"storage_gb": 5})
    [row] = services.entitlements_grant_plan(
        user_id="u1", plan=plan, subscription_id="s1", expires_at=_days(10)
    )
    assert _check() == {
        "user_id": "u1",
        "feature_code": "calendar",
        "has_access": True,
        "reason": "active",
        "expires_at": row.expires_at,
        "usage_limits": {"storage_gb": 5},
        "source": {"entitlement_id": str(row.pk), "plan_id": plan.pk, "family_id": None},
    }
    assert _check(user_id="u2")["reason"] == "no_entitlement"
    assert _check(feature_code="other")["reason"] == "no_entitlement"


def test_a_row_past_expiry_never_grants_even_before_the_sweeper_ran():
    row = EntitlementFactory(
        user_id="u1", feature=FeatureFactory(code="calendar"), granted_at=_days(-40), expires_at=_days(-1)
    )
    assert row.status == "active"
    answer = _check()
    assert (answer["has_access"], answer["reason"], answer["source"]) == (False, "expired", None)
    assert answer["expires_at"] == row.expires_at


def test_expired_and_cancelled_rows_explain_themselves_by_the_latest_ending():
    feature = FeatureFactory(code="calendar")
    EntitlementFactory(user_id="u1", feature=feature, status="expired", expires_at=_days(-30))
    assert _check()["reason"] == "expired"
    revoked = EntitlementFactory(user_id="u1", feature=feature, status="cancelled", expires_at=_days(30))
    assert _check()["reason"] == "revoked"
    assert _check()["expires_at"] is None
    revoked.delete()
    EntitlementFactory(user_id="u1", feature=feature, status="active", expires_at=_days(-1))
    assert _check()["reason"] == "expired"


def test_the_longest_lasting_row_is_the_source_and_the_most_generous_limits_win():
    feature = FeatureFactory(code="calendar")
    EntitlementFactory(
        user_id="u1",
        feature=feature,
        expires_at=_days(5),
        usage_limits={"storage_gb": 200, "ai_per_day": 10, "exports": True, "seats": 1},
    )
    lifetime = EntitlementFactory(
        user_id="u1", feature=feature, expires_at=None, usage_limits={"storage_gb": 50, "ai_per_day": None}
    )
    EntitlementFactory(user_id="u1", feature=feature, expires_at=_days(50), usage_limits={"exports": False})
    EntitlementFactory(user_id="u1", feature=feature, status="cancelled", usage_limits={"storage_gb": 999})

    answer = _check()
    assert answer["source"]["entitlement_id"] == str(lifetime.pk)
    assert answer["expires_at"] is None
    assert answer["usage_limits"] == {"storage_gb": 200, "ai_per_day": None, "exports": True, "seats": 1}


def test_family_members_get_the_familys_features_and_lose_them_on_removal():
    plan = plan_with(["calendar", "vault"], max_users=3)
    rows = services.entitlements_grant_plan(
        user_id="owner", plan=plan, subscription_id="s1", expires_at=_days(20)
    )
    family = Family.objects.get()
    services.family_member_add(family_id=family.pk, user_id="kid")

    kid = _check(user_id="kid")
    assert kid["has_access"] is True
    assert kid["source"] == {
        "entitlement_id": str(next(r.pk for r in rows if r.feature_id == "calendar")),
        "plan_id": plan.pk,
        "family_id": str(family.pk),
    }
    assert _check(user_id="owner")["has_access"] is True
    assert _check(user_id="stranger")["has_access"] is False

    services.family_member_remove(family_id=family.pk, user_id="kid")
    assert _check(user_id="kid")["reason"] == "no_entitlement"


def test_a_cancelled_family_plan_is_revoked_for_every_member():
    plan = plan_with(["calendar"], max_users=3)
    payment = uuid.uuid4()
    services.entitlements_grant_plan(user_id="owner", plan=plan, payment_id=payment)
    services.family_member_add(family_id=Family.objects.get().pk, user_id="kid")
    services.entitlements_cancel_for_payment(payment_id=payment, reason="refund")
    assert _check(user_id="kid")["reason"] == "revoked"
    assert _check(user_id="owner")["reason"] == "revoked"


def test_batch_answers_each_feature_like_the_single_check():
    plan = plan_with(["calendar", "vault"])
    services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="s1")
    codes = ["calendar", "vault", "unknown_feature"]
    answers = entitlement_check_many(user_id="u1", feature_codes=codes)
    assert list(answers) == codes
    for code in codes:
        assert answers[code] == _check(feature_code=code)
    assert [answers[c]["has_access"] for c in codes] == [True, True, False]


def test_batch_answers_features_of_several_rows_each_like_the_single_check():
    def row(code, **fields):
        return EntitlementFactory(user_id="u1", feature=FeatureFactory(code=code), **fields)

    row("calendar", expires_at=_days(5), usage_limits={"items": 10})
    row("calendar", expires_at=_days(30), usage_limits={"items": 50, "sync": True})
    row("calendar", status="expired", expires_at=_days(-3))
    row("vault", status="expired", expires_at=_days(-10))
    row("vault", status="cancelled", expires_at=_days(20))
    row("photos", status="expired", expires_at=_days(-2))
    row("photos", status="expired", expires_at=_days(-9))
    row("chores", expires_at=None, usage_limits={"lists": None})
    row("chores", expires_at=_days(1), usage_limits={"lists": 3})
    codes = ["calendar", "vault", "photos", "chores", "nothing_held"]
    answers = entitlement_check_many(user_id="u1", feature_codes=codes)
    assert answers == {code: _check(feature_code=code) for code in codes}
    reasons = [answers[code]["reason"] for code in codes]
    assert reasons == ["active", "revoked", "expired", "active", "no_entitlement"]
    assert answers["calendar"]["usage_limits"] == {"items": 50, "sync": True}
    assert answers["chores"]["expires_at"] is None
