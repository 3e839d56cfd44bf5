import factory

from payments.models import Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    amount = 1999
    currency = "USD"
    payment_method = Payment.Method.CREDIT_CARD
    customer_id = "customer_123"
    order_id = factory.Sequence(lambda n: f"order_{n}")
    description = "Test payment"
