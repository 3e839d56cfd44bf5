"""A duplicate subscription's refund that Stripe did not answer is sent again by the settling
task's own retries (backoff), under the same idempotency key: not left to reconciliation. A
duplicate left to staff is settled by no task and no sweep, only on a staff decision."""

import pytest

from payments.models import Payment, Refund, Subscription
from payments.stripe import gateway
from payments.subscriptions import LeftToStaff, subscription_duplicate_settle, subscriptions_settle_duplicates
from payments.tasks import settle_duplicate_subscription
from payments.tests.factories import SubscriptionFactory, charged_payment

pytestmark = pytest.mark.django_db


def _paid_duplicate(localstripe, user_id="user_double") -> tuple[Subscription, Payment]:
    kept = SubscriptionFactory(user_id=user_id)
    duplicate = SubscriptionFactory(
        user_id=user_id, plan=kept.plan, duplicate_of=kept, status=Subscription.Status.CANCELED
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


def test_reconciliation_leaves_a_duplicate_left_to_staff_and_settles_the_others(localstripe):
    left, left_payment = _paid_duplicate(localstripe)
    Subscription.objects.filter(pk=left.pk).update(settled_by_staff=True)
    _, runtime_payment = _paid_duplicate(localstripe, "user_twice")

    assert subscriptions_settle_duplicates() == 1

    left_payment.refresh_from_db()
    assert (left_payment.status, left_payment.refunded_amount) == (Payment.Status.COMPLETED, 0)
    runtime_payment.refresh_from_db()
    assert (runtime_payment.status, runtime_payment.refunded_amount) == (Payment.Status.REFUNDED, 999)
    assert list(Refund.objects.values_list("payment_id", flat=True)) == [runtime_payment.pk]


def test_a_duplicate_left_to_staff_is_settled_only_on_a_staff_decision(localstripe):
    duplicate, payment = _paid_duplicate(localstripe)
    Subscription.objects.filter(pk=duplicate.pk).update(settled_by_staff=True)
    with pytest.raises(LeftToStaff):
        subscription_duplicate_settle(subscription_id=duplicate.pk)
    assert settle_duplicate_subscription.apply(args=[str(duplicate.pk)]).get() == "left to staff"
    assert not Refund.objects.exists()

    subscription_duplicate_settle(subscription_id=duplicate.pk, by_staff="staff:fiona")

    (refund,) = Refund.objects.all()
    assert (refund.payment_id, refund.amount, refund.requested_by) == (payment.pk, 999, "staff:fiona")
