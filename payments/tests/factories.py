import uuid
from datetime import UTC, datetime
from decimal import Decimal

import factory

from payments.models import CheckoutSession, Payment, Refund, StripeEvent, Subscription
from payments.stripe import gateway
from pricing.tests.factories import PlanFactory


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    amount = 1999
    currency = "USD"
    payment_method = Payment.Method.CREDIT_CARD
    customer_id = "customer_123"
    order_id = factory.Sequence(lambda n: f"order_{n}")
    description = "Test payment"


class StripePaymentFactory(PaymentFactory):
    """A completed card payment with its PaymentIntent: one that can be refunded."""

    status = Payment.Status.COMPLETED
    external_payment_id = factory.Sequence(lambda n: f"pi_test_{n:024d}")


def charged_payment(localstripe, *, amount: int = 2000, description: str = "order", **fields) -> Payment:
    """A completed card payment whose PaymentIntent localstripe charged: one Stripe can refund."""
    payment_id = uuid.uuid4()
    intent = gateway.payment_intent_create(
        payment_id=payment_id, amount=amount, currency="USD", description=description, metadata={}
    )
    localstripe.post(f"/v1/payment_intents/{intent['id']}", {"payment_method": "pm_card_visa"})
    localstripe.post(f"/v1/payment_intents/{intent['id']}/confirm")
    return PaymentFactory(
        id=payment_id,
        amount=amount,
        status=Payment.Status.COMPLETED,
        payment_method=Payment.Method.CREDIT_CARD,
        external_payment_id=intent["id"],
        **fields,
    )


class CheckoutSessionFactory(factory.django.DjangoModelFactory):
    """An open checkout of a plan priced in zone C (India, x 0.40), as the API would write it."""

    class Meta:
        model = CheckoutSession

    user_id = factory.Sequence(lambda n: f"user_{n}")
    plan = factory.SubFactory(PlanFactory)
    country = "IN"
    country_source = CheckoutSession.CountrySource.REQUEST
    zone = "C"
    multiplier = Decimal("0.40")
    amount = 400
    currency = "USD"
    success_url = "https://app.example/ok"
    cancel_url = "https://app.example/cancel"


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    payment = factory.SubFactory(StripePaymentFactory)
    amount = factory.LazyAttribute(lambda o: o.payment.amount)
    reason = "requested_by_customer"
    requested_by = "service:billing"


class StripeEventPayloadFactory(factory.DictFactory):
    """A Stripe event as Stripe sends it (its `data.object` is a bare customer unless given)."""

    id = factory.Sequence(lambda n: f"evt_test_{n:024d}")
    object = "event"
    type = "customer.created"
    api_version = "2024-06-20"
    created = 1_700_000_000
    livemode = False
    data = factory.LazyFunction(lambda: {"object": {"id": "cus_x", "object": "customer"}})


class StripeEventFactory(factory.django.DjangoModelFactory):
    """A stored Stripe event (payments/stripe/events.py's inbox row), received by webhook."""

    class Meta:
        model = StripeEvent
        exclude = ["event"]

    event = factory.SubFactory(StripeEventPayloadFactory)
    id = factory.LazyAttribute(lambda o: o.event["id"])
    type = factory.LazyAttribute(lambda o: o.event["type"])
    api_version = factory.LazyAttribute(lambda o: o.event["api_version"])
    stripe_created_at = factory.LazyAttribute(lambda o: datetime.fromtimestamp(o.event["created"], tz=UTC))
    payload = factory.LazyAttribute(lambda o: o.event)
    source = StripeEvent.Source.WEBHOOK


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    user_id = factory.Sequence(lambda n: f"user_{n}")
    plan = factory.SubFactory(PlanFactory)
    status = Subscription.Status.ACTIVE
    amount = 999
    currency = "USD"
    stripe_subscription_id = factory.Sequence(lambda n: f"sub_test_{n:014d}")
