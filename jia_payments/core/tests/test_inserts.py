"""core.inserts: new rows written as `save(force_insert=True)` writes them, in one statement."""

import pytest
from auditlog.models import LogEntry
from django.db import IntegrityError, connection, transaction

from jia_payments.core.audit.trail import creation_entry
from jia_payments.core.inserts import NewRow, RowUpdate, insert_rows
from jia_payments.core.models import IdempotencyKey, OutboxEvent
from jia_payments.core.outbox.events import new_event
from payments.models import Payment

pytestmark = pytest.mark.django_db


def _payment() -> Payment:
    return Payment(
        amount=1999, currency="USD", payment_method="bank_transfer", customer_id="c", metadata={"a": 1}
    )


def _prepared(value):
    return getattr(value, "obj", value)  # psycopg's Jsonb wraps the object


def test_a_row_s_values_are_what_get_db_prep_save_makes_of_each_field():
    payment = _payment()
    rows = [NewRow(payment), NewRow(creation_entry(payment))]
    with new_event(type="payment.created", aggregate_id=payment.pk, subject="payments/x", data={}) as event:
        rows.append(NewRow(event))
    for row in rows:
        expected = [
            field.get_db_prep_save(getattr(row.instance, field.attname), connection) for field in row.fields
        ]
        assert [_prepared(value) for value in row.values] == [_prepared(value) for value in expected]
        assert [type(value) for value in row.values] == [type(value) for value in expected]
    assert payment.created_at is not None and payment.updated_at is not None


def test_several_rows_are_one_statement_and_their_keys_are_read_back(django_assert_num_queries):
    payment = _payment()
    entry = creation_entry(payment)
    with django_assert_num_queries(1):
        insert_rows(NewRow(payment), NewRow(entry))
    assert LogEntry.objects.get().pk == entry.pk
    assert Payment.objects.get().pk == payment.pk
    assert not payment._state.adding and not entry._state.adding


def test_one_row_is_one_insert(django_assert_num_queries):
    with new_event(type="payment.created", aggregate_id=1, subject="payments/1", data={}) as event:
        with django_assert_num_queries(1) as queries:
            insert_rows(NewRow(event))
    assert queries.captured_queries[0]["sql"].startswith('INSERT INTO "core_outboxevent"')
    assert OutboxEvent.objects.get().pk == event.pk


def _claim() -> IdempotencyKey:
    return IdempotencyKey.objects.create(
        caller="svc", key="k", method="POST", path="/p/", request_fingerprint="f", state="in_progress"
    )


def test_an_update_joins_the_inserts_in_their_one_statement(django_assert_num_queries):
    claim = _claim()
    payment = _payment()
    update = RowUpdate(claim, {"state": "completed", "response_status": 201, "response_body": '{"a":1}'})
    with django_assert_num_queries(1):
        insert_rows(NewRow(payment), update)
    assert update.found
    assert IdempotencyKey.objects.values_list("state", "response_status", "response_body").get() == (
        "completed",
        201,
        '{"a":1}',
    )
    assert claim.state == "in_progress"  # the instance is left as it was
    assert Payment.objects.get().pk == payment.pk


def test_an_update_of_a_row_not_there_is_not_found_and_the_inserts_are_made():
    gone = IdempotencyKey(pk=12345)
    update = RowUpdate(gone, {"state": "completed"})
    insert_rows(NewRow(_payment()), update)
    assert not update.found
    assert Payment.objects.count() == 1
    insert_rows(update)  # alone
    assert not update.found


def test_a_refused_insert_leaves_the_update_unmade():
    claim = _claim()
    made = _payment()
    insert_rows(NewRow(made))
    again = _payment()
    again.pk = made.pk
    update = RowUpdate(claim, {"state": "completed"})
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(NewRow(again), update)
    assert IdempotencyKey.objects.get().state == "in_progress"
    assert not update.found
