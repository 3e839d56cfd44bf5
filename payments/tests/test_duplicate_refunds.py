"""A duplicate subscription's refund that Stripe did not answer is sent again by the settling
task's own retries (backoff), under the same idempotency key: not left to reconciliation."""

import pytest

from payments.models import Payment, Refund, Subscription
from payments.stripe import gateway
from payments.subscriptions import subscription_duplicate_settle
from payments.tests.factories import SubscriptionFactory, charged_payment

pytestmark = pytest.mark.django_db


def _paid_duplicate(localstripe) -> tuple[Subscription, Payment]:
    kept = SubscriptionFactory(user_id="user_double")
    duplicate = SubscriptionFactory(
        user_id="user_double", plan=kept.plan, duplicate_of=kept, status=Subscription.Status.CANCELED
    )
    payment = charged_payment(
        localstripe,
        amount=999,
        description="duplicate",
        metadata={"stripe_subscription_id": duplicate.stripe_subscription_id},
    )
    return duplicate, payment


def test_the_settling_tasks_next_try_sends_the_refund_stripe_did_not_answer(localstripe, monkeypatch):
    duplicate, payment = _paid_duplicate(localstripe)

    def down(**kwargs):
        raise gateway.StripeUnavailable()

    with monkeypatch.context() as patched:
        patched.setattr(gateway, "refund_create", down)
        with pytest.raises(gateway.StripeUnavailable):
            subscription_duplicate_settle(subscription_id=duplicate.pk)
    (pending,) = Refund.objects.all()
    assert (pending.status, pending.amount) == (Refund.Status.PENDING, 999)

    subscription_duplicate_settle(subscription_id=duplicate.pk)  # the task's retry, seconds later

    (refund,) = Refund.objects.all()
    assert (refund.pk, refund.status) == (pending.pk, Refund.Status.SUCCEEDED)
    assert refund.stripe_refund_id
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (Payment.Status.REFUNDED, 999)
