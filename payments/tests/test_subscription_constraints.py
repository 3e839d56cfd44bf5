"""What the database itself refuses about subscriptions: a second live one for a buyer."""

import pytest
from django.db import IntegrityError, transaction

from payments.models import Subscription
from payments.tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", ["active", "trialing", "past_due", "incomplete"])
def test_a_buyer_cannot_have_two_live_subscriptions(status):
    first = SubscriptionFactory(user_id="user_one", status="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriptionFactory(user_id="user_one", status=status, plan=first.plan)
    assert list(Subscription.objects.filter(user_id="user_one")) == [first]


def test_ended_subscriptions_and_recorded_duplicates_do_not_count():
    live = SubscriptionFactory(user_id="user_two", status="active")
    for status in ("canceled", "unpaid", "incomplete_expired"):
        SubscriptionFactory(user_id="user_two", status=status, plan=live.plan)
    SubscriptionFactory(user_id="user_two", status="active", plan=live.plan, duplicate_of=live)
    SubscriptionFactory(user_id="user_other", status="active", plan=live.plan)
    assert Subscription.objects.filter(user_id="user_two").count() == 5
