"""payments.services guards its own rules, whoever calls it (API, admin, checkout, tasks)."""

import pytest
from django.core.exceptions import ValidationError

from jia_payments.core.api.auth import Principal
from jia_payments.core.api.errors import DomainError, InvalidTransition, NotFound
from jia_payments.core.models import OutboxEvent
from payments.models import Payment
from payments.services import (
    PaymentForbidden,
    payment_create,
    payment_ensure_status,
    payment_move_status,
    payment_record,
)

pytestmark = pytest.mark.django_db

GOOD = {"amount": 1999, "currency": "USD", "payment_method": "credit_card", "customer_id": "customer_123"}
SERVICE = Principal(user_id="billing", role=Principal.SERVICE)


def _create_as_service(**fields):
    return payment_create(principal=SERVICE, **fields)


# Both ways in validate alike, and payment_create before it calls Stripe (no localstripe here).
CREATES = pytest.mark.parametrize("create", [payment_record, _create_as_service], ids=["record", "create"])


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
@CREATES
def test_create_refuses_bad_money(create, change, field):
    with pytest.raises(DomainError) as refused:
        create(**{**GOOD, **change})
    assert list(refused.value.errors) == [field]
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()


@CREATES
def test_create_refuses_what_the_model_refuses(create):
    with pytest.raises(ValidationError) as refused:
        create(**{**GOOD, "payment_method": "cash", "customer_id": ""})
    assert set(refused.value.message_dict) == {"payment_method", "customer_id"}
    assert not Payment.objects.exists()


def test_an_end_user_may_create_a_payment_only_for_themself():
    with pytest.raises(PaymentForbidden) as refused:
        payment_create(principal=Principal(user_id="alice", role=Principal.USER), **GOOD)
    assert (refused.value.status, refused.value.code) == (403, "permission_denied")
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_moving_a_missing_payment_is_not_found():
    import uuid

    with pytest.raises(NotFound):
        payment_move_status(payment_id=uuid.uuid4(), status="completed")


def test_a_reason_only_for_failed():
    payment = payment_record(**GOOD)
    with pytest.raises(DomainError) as refused:
        payment_move_status(payment_id=payment.id, status="completed", failure_reason="why")
    assert refused.value.errors == {"failure_reason": ["Only a failed payment has a failure reason."]}
    with pytest.raises(InvalidTransition):
        payment_move_status(payment_id=payment.id, status="pending")
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_move_refuses_the_status_a_payment_has_and_ensure_leaves_it_as_it_is():
    payment = payment_record(**GOOD)
    payment_move_status(payment_id=payment.id, status="completed")
    with pytest.raises(InvalidTransition):
        payment_move_status(payment_id=payment.id, status="completed")
    events = OutboxEvent.objects.count()
    again, moved = payment_ensure_status(payment_id=payment.id, status="completed")
    assert (again.status, moved, OutboxEvent.objects.count()) == ("completed", False, events)
    with pytest.raises(InvalidTransition):
        payment_ensure_status(payment_id=payment.id, status="failed", failure_reason="late")
