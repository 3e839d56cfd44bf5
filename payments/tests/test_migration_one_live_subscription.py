"""payments 0004 (one live subscription per buyer) on a database that already has buyers with
several: the extra ones become duplicates of the one kept, so the constraint can be added; 0005
leaves every duplicate not settled yet to staff (nothing cancels or refunds it automatically)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("payments", "0003_subscriptions")]
AFTER = [("payments", "0004_subscription_one_live_per_buyer")]
LEFT_TO_STAFF = [("payments", "0005_subscription_duplicate_settled_by_staff")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0003(transactional_db):
    """The database as 0003 left it; migrated forward to every app's latest again afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _subscriptions(apps, user_id, *rows):
    Plan = apps.get_model("pricing", "Plan")
    Subscription = apps.get_model("payments", "Subscription")
    plan, _ = Plan.objects.get_or_create(
        id="migration_plan", defaults={"name": "P", "price_cents": 999, "billing_cycle": "monthly"}
    )
    made = []
    for n, (status, days_ago) in enumerate(rows):
        subscription = Subscription.objects.create(
            user_id=user_id, plan=plan, status=status, amount=999, currency="USD",
            stripe_subscription_id=f"sub_{user_id}_{n}",
        )  # fmt: skip
        Subscription.objects.filter(pk=subscription.pk).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )
        made.append(subscription.stripe_subscription_id)
    return made


def test_the_extra_live_subscriptions_become_duplicates_of_the_one_kept(at_0003):
    # the active one is kept over older ones not paid for; of two active ones, the older
    incomplete, paid, newer = _subscriptions(
        at_0003, "buyer_a", ("incomplete", 40), ("active", 30), ("active", 1)
    )
    ended, live = _subscriptions(at_0003, "buyer_b", ("canceled", 90), ("past_due", 10))
    (alone,) = _subscriptions(at_0003, "buyer_c", ("active", 5))
    apps = _migrate(AFTER)
    Subscription = apps.get_model("payments", "Subscription")
    kept_of = {
        row["stripe_subscription_id"]: row["duplicate_of__stripe_subscription_id"]
        for row in Subscription.objects.values(
            "stripe_subscription_id", "duplicate_of__stripe_subscription_id"
        )
    }
    assert kept_of == {
        incomplete: paid, paid: None, newer: paid,
        ended: None, live: None,
        alone: None,
    }  # fmt: skip
    statuses = dict(Subscription.objects.values_list("stripe_subscription_id", "status"))
    assert statuses[incomplete] == "incomplete" and statuses[newer] == "active"  # Stripe's; settled later


def test_back_to_0003_and_forward_again_gives_the_same_duplicates(at_0003):
    first, second = _subscriptions(at_0003, "buyer_d", ("active", 3), ("trialing", 2))
    _migrate(AFTER)
    _migrate(BEFORE)
    apps = _migrate(AFTER)
    Subscription = apps.get_model("payments", "Subscription")
    assert dict(
        Subscription.objects.values_list("stripe_subscription_id", "duplicate_of__stripe_subscription_id")
    ) == {
        first: None,
        second: first,
    }


def test_the_duplicates_not_settled_are_left_to_staff(at_0003):
    kept, extra = _subscriptions(at_0003, "buyer_e", ("active", 200), ("active", 100))
    apps = _migrate(AFTER)
    Subscription = apps.get_model("payments", "Subscription")
    Payment = apps.get_model("payments", "Payment")
    kept_row = Subscription.objects.get(stripe_subscription_id=kept)
    plan = kept_row.plan

    def runtime_duplicate(stripe_id, *, paid, refunded):
        """A duplicate the rule made: canceled at Stripe, its payment refunded or not (yet)."""
        Subscription.objects.create(
            user_id="buyer_e", plan=plan, status="canceled", amount=999, currency="USD",
            stripe_subscription_id=stripe_id, duplicate_of=kept_row,
        )  # fmt: skip
        if paid:
            Payment.objects.create(
                amount=999, currency="USD", payment_method="credit_card", customer_id="buyer_e",
                status="refunded" if refunded == 999 else "completed", refunded_amount=refunded,
                metadata={"stripe_subscription_id": stripe_id},
            )  # fmt: skip

    runtime_duplicate("sub_settled", paid=True, refunded=999)
    runtime_duplicate("sub_never_paid", paid=False, refunded=0)
    runtime_duplicate("sub_refund_failed", paid=True, refunded=0)
    apps = _migrate(LEFT_TO_STAFF)
    Subscription = apps.get_model("payments", "Subscription")
    assert dict(Subscription.objects.values_list("stripe_subscription_id", "settled_by_staff")) == {
        kept: False,
        extra: True,
        "sub_settled": False,
        "sub_never_paid": False,
        "sub_refund_failed": True,
    }
