"""entitlements_grant_plan, renewals, cancellations: the service interface the Stripe webhooks use."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from entitlements import services
from entitlements.errors import FamilyOwnerMismatch
from entitlements.models import Entitlement, Family, FamilyMember
from entitlements.services import entitlements_grant_plan
from entitlements.tests.factories import plan_with
from pricing.selectors import plan_period_end

pytestmark = pytest.mark.django_db

JAN_31 = datetime(2027, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "cycle", "end"),
    [
        (JAN_31, "monthly", datetime(2027, 2, 28, 10, 30, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), "monthly", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2027, 3, 31, tzinfo=UTC), "monthly", datetime(2027, 4, 30, tzinfo=UTC)),
        (datetime(2027, 12, 15, tzinfo=UTC), "monthly", datetime(2028, 1, 15, tzinfo=UTC)),
        (datetime(2028, 2, 29, tzinfo=UTC), "yearly", datetime(2029, 2, 28, tzinfo=UTC)),
        (JAN_31, "yearly", datetime(2028, 1, 31, 10, 30, tzinfo=UTC)),
        (JAN_31, "one_time", None),
    ],
)
def test_period_end_is_calendar_correct(start, cycle, end):
    assert plan_period_end(billing_cycle=cycle, starts_at=start) == end


def test_grant_creates_one_row_per_feature_with_the_plans_limits(outbox):
    plan = plan_with(["calendar", "lists"], usage_limits={"storage_gb": 50})
    rows = entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1", starts_at=JAN_31)

    assert sorted(r.feature_id for r in rows) == ["calendar", "lists"]
    stored = Entitlement.objects.order_by("feature_id")
    assert [(e.user_id, e.feature_id, e.plan_id, e.subscription_id, e.status) for e in stored] == [
        ("u1", "calendar", plan.pk, "sub_1", "active"),
        ("u1", "lists", plan.pk, "sub_1", "active"),
    ]
    assert {e.expires_at for e in stored} == {datetime(2027, 2, 28, 10, 30, tzinfo=UTC)}
    assert {e.granted_at for e in stored} == {JAN_31}
    assert all(e.usage_limits == {"storage_gb": 50} for e in stored)
    assert all(e.origin == "plan" and e.family_id is None for e in stored)
    assert outbox() == [("entitlement.created", str(r.pk)) for r in rows]


def test_grant_accepts_a_plan_id_and_one_time_plans_never_expire():
    plan_with(["vault"], id="lifetime_x", billing_cycle="one_time")
    [row] = entitlements_grant_plan(user_id="u1", plan="lifetime_x", payment_id=uuid.uuid4())
    assert row.expires_at is None
    assert row.plan_id == "lifetime_x"


def test_an_explicit_expires_at_wins_over_the_billing_cycle():
    plan = plan_with(["calendar"])
    end = timezone.now() + timedelta(days=3)
    [row] = entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1", expires_at=end)
    assert row.expires_at == end


def test_a_retried_webhook_creates_and_changes_nothing(outbox):
    plan = plan_with(["calendar", "lists"])
    first = entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1", starts_at=JAN_31)
    events = outbox()
    before = list(Entitlement.objects.order_by("pk").values())

    again = entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1", starts_at=JAN_31)

    assert sorted(r.pk for r in again) == sorted(r.pk for r in first)
    assert list(Entitlement.objects.order_by("pk").values()) == before
    assert outbox() == events


def test_a_retried_payment_grant_creates_nothing():
    plan = plan_with(["vault"], billing_cycle="one_time")
    payment_id = uuid.uuid4()
    entitlements_grant_plan(user_id="u1", plan=plan, payment_id=payment_id)
    entitlements_grant_plan(user_id="u1", plan=plan, payment_id=payment_id)
    assert Entitlement.objects.count() == 1


def test_a_late_older_period_changes_nothing():
    plan = plan_with(["calendar"])
    entitlements_grant_plan(
        user_id="u1", plan=plan, subscription_id="sub_1", starts_at=datetime(2027, 3, 1, tzinfo=UTC)
    )
    entitlements_grant_plan(
        user_id="u1", plan=plan, subscription_id="sub_1", starts_at=datetime(2027, 2, 1, tzinfo=UTC)
    )
    assert Entitlement.objects.get().expires_at == datetime(2027, 4, 1, tzinfo=UTC)


def test_renewal_extends_the_rows_instead_of_adding_and_reactivates_expired_ones(outbox):
    plan = plan_with(["calendar", "lists"])
    first_payment, second_payment = uuid.uuid4(), uuid.uuid4()
    rows = entitlements_grant_plan(
        user_id="u1", plan=plan, subscription_id="sub_1", payment_id=first_payment, starts_at=JAN_31
    )
    Entitlement.objects.filter(feature_id="lists").update(status="expired")
    created = outbox()

    renewed = entitlements_grant_plan(
        user_id="u1",
        plan=plan,
        subscription_id="sub_1",
        payment_id=second_payment,
        starts_at=datetime(2027, 2, 28, 10, 30, tzinfo=UTC),
    )

    assert sorted(r.pk for r in renewed) == sorted(r.pk for r in rows)
    assert Entitlement.objects.count() == 2
    for row in Entitlement.objects.all():
        assert row.expires_at == datetime(2027, 3, 28, 10, 30, tzinfo=UTC)
        assert row.status == "active"
        assert row.payment_id == second_payment
        assert row.granted_at == JAN_31
    assert outbox()[len(created) :] == [("entitlement.updated", str(r.pk)) for r in renewed]


def test_an_upgrade_in_the_same_period_moves_the_rows_to_the_new_plan():
    basic = plan_with(["calendar", "lists"])
    premium = plan_with(["calendar", "vault"], usage_limits={"storage_gb": 9})
    end = timezone.now() + timedelta(days=20)
    entitlements_grant_plan(user_id="u1", plan=basic, subscription_id="sub_1", expires_at=end)

    entitlements_grant_plan(user_id="u1", plan=premium, subscription_id="sub_1", expires_at=end)

    rows = {e.feature_id: e for e in Entitlement.objects.all()}
    assert {code: (e.plan_id, e.status) for code, e in rows.items()} == {
        "calendar": (premium.pk, "active"),
        "vault": (premium.pk, "active"),
        "lists": (basic.pk, "cancelled"),
    }
    assert rows["calendar"].usage_limits == {"storage_gb": 9}
    assert rows["lists"].status_reason == services.REASON_PLAN_CHANGED


def test_a_family_plan_creates_a_family_owned_by_the_buyer_who_takes_a_seat():
    plan = plan_with(["calendar"], max_users=4)
    [row] = entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sub_f")

    family = Family.objects.get()
    assert row.family_id == family.pk
    assert (family.owner_user_id, family.plan_id, family.member_count) == ("owner", plan.pk, 1)
    assert list(FamilyMember.objects.values_list("user_id", "role")) == [("owner", "owner")]

    entitlements_grant_plan(
        user_id="owner", plan=plan, subscription_id="sub_f", starts_at=timezone.now() + timedelta(days=31)
    )
    assert Family.objects.count() == 1
    assert set(Entitlement.objects.values_list("family_id", flat=True)) == {family.pk}


def test_a_family_plan_with_a_given_family_id_creates_or_reuses_that_family():
    plan = plan_with(["calendar"], max_users=4)
    family_id = uuid.uuid4()
    entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sub_1", family_id=family_id)
    assert Family.objects.get().pk == family_id
    entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sub_2", family_id=family_id)
    assert Family.objects.count() == 1
    with pytest.raises(FamilyOwnerMismatch):
        entitlements_grant_plan(user_id="intruder", plan=plan, subscription_id="sub_3", family_id=family_id)
    assert not Entitlement.objects.filter(subscription_id="sub_3").exists()


def test_an_unkeyed_grant_is_idempotent_per_user_and_plan():
    plan = plan_with(["calendar"], id="free_x", price_cents=0)
    entitlements_grant_plan(user_id="u1", plan=plan, starts_at=JAN_31)
    entitlements_grant_plan(user_id="u1", plan=plan, starts_at=JAN_31)
    assert Entitlement.objects.count() == 1


def test_cancel_for_payment_cancels_exactly_its_active_rows(outbox):
    plan = plan_with(["calendar", "lists"], billing_cycle="one_time")
    refunded, kept = uuid.uuid4(), uuid.uuid4()
    entitlements_grant_plan(user_id="u1", plan=plan, payment_id=refunded)
    entitlements_grant_plan(user_id="u2", plan=plan, payment_id=kept)
    before = len(outbox())

    cancelled = services.entitlements_cancel_for_payment(payment_id=refunded, reason="refund")

    assert {(e.user_id, e.status, e.status_reason) for e in cancelled} == {("u1", "cancelled", "refund")}
    assert len(cancelled) == 2
    assert set(Entitlement.objects.filter(user_id="u2").values_list("status", flat=True)) == {"active"}
    assert outbox()[before:] == [("entitlement.updated", str(e.pk)) for e in cancelled]
    assert services.entitlements_cancel_for_payment(payment_id=refunded, reason="refund") == []


def test_cancel_for_subscription_now_or_at_period_end():
    plan = plan_with(["calendar"])
    end = timezone.now() + timedelta(days=20)
    entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_now", expires_at=end)
    entitlements_grant_plan(user_id="u2", plan=plan, subscription_id="sub_later", expires_at=end)

    services.entitlements_cancel_for_subscription(subscription_id="sub_now", reason="deleted")
    at = timezone.now() + timedelta(days=5)
    services.entitlements_cancel_for_subscription(subscription_id="sub_later", reason="cancel_at", at=at)

    now_row = Entitlement.objects.get(subscription_id="sub_now")
    later_row = Entitlement.objects.get(subscription_id="sub_later")
    assert (now_row.status, now_row.expires_at) == ("cancelled", end)
    assert (later_row.status, later_row.expires_at) == ("active", at)


def test_extend_subscription_moves_the_end_later_only():
    plan = plan_with(["calendar", "lists"])
    end = timezone.now() + timedelta(days=2)
    entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1", expires_at=end)
    Entitlement.objects.filter(feature_id="lists").update(status="expired")

    later = end + timedelta(days=30)
    services.entitlements_extend_subscription(subscription_id="sub_1", expires_at=later)
    services.entitlements_extend_subscription(subscription_id="sub_1", expires_at=end)

    assert set(Entitlement.objects.values_list("status", "expires_at")) == {("active", later)}


def test_extend_leaves_cancelled_rows_cancelled():
    plan = plan_with(["calendar"])
    entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1")
    services.entitlements_cancel_for_subscription(subscription_id="sub_1", reason="deleted")
    services.entitlements_extend_subscription(
        subscription_id="sub_1", expires_at=timezone.now() + timedelta(days=90)
    )
    assert Entitlement.objects.get().status == "cancelled"


def test_a_failed_grant_leaves_nothing_behind(outbox):
    plan = plan_with(["calendar"], max_users=3)
    family_id = uuid.uuid4()
    entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="s1", family_id=family_id)
    before = (Entitlement.objects.count(), Family.objects.count(), len(outbox()))
    with pytest.raises(FamilyOwnerMismatch):
        entitlements_grant_plan(user_id="other", plan=plan, subscription_id="s2", family_id=family_id)
    assert (Entitlement.objects.count(), Family.objects.count(), len(outbox())) == before
