"""payments.services guards its own rules, whoever calls it (API, admin, checkout, tasks)."""

import pytest
from django.core.exceptions import ValidationError

from jia_payments.core.api.errors import DomainError, InvalidTransition, NotFound
from jia_payments.core.models import OutboxEvent
from payments.models import Payment
from payments.services import payment_create, payment_update_status

pytestmark = pytest.mark.django_db

GOOD = {"amount": 1999, "currency": "USD", "payment_method": "credit_card", "customer_id": "customer_123"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 100_000_000}, "amount"),
        ({"amount": 19.99}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "usd"}, "currency"),
    ],
)
def test_create_refuses_bad_money(change, field):
    with pytest.raises(DomainError) as refused:
        payment_create(**{**GOOD, **change})
    assert list(refused.value.errors) == [field]
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_create_refuses_what_the_model_refuses():
    with pytest.raises(ValidationError) as refused:
        payment_create(**{**GOOD, "payment_method": "cash", "customer_id": ""})
    assert set(refused.value.message_dict) == {"payment_method", "customer_id"}
    assert not Payment.objects.exists()


def test_update_status_of_a_missing_payment_is_not_found():
    import uuid

    with pytest.raises(NotFound):
        payment_update_status(payment_id=uuid.uuid4(), status="completed")


def test_a_reason_only_for_failed():
    payment = payment_create(**GOOD)
    with pytest.raises(DomainError) as refused:
        payment_update_status(payment_id=payment.id, status="completed", failure_reason="why")
    assert refused.value.errors == {"failure_reason": ["Only a failed payment has a failure reason."]}
    with pytest.raises(InvalidTransition):
        payment_update_status(payment_id=payment.id, status="pending")
    payment.refresh_from_db()
    assert payment.status == "pending"
