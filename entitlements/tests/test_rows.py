"""Single rows granted by hand: the family they name is checked in the inserting transaction."""

import threading
import time

import pytest
from django.db import connection, transaction

from entitlements import services
from entitlements.errors import InvalidEntitlementInput
from entitlements.models import Entitlement, Family
from entitlements.tests.factories import FamilyFactory, plan_with
from jia_payments.core.models import OutboxEvent


def _grant(family_id):
    plan_with(["calendar"], id="single_x")
    return services.entitlement_create(
        user_id="u1", feature_code="calendar", plan_id="single_x", family_id=family_id
    )


def _assert_unknown_family(raised) -> None:
    assert (raised.value.status, raised.value.errors) == (422, {"family_id": ["Unknown family."]})
    assert not Entitlement.objects.exists()
    assert not OutboxEvent.objects.filter(type__startswith="entitlement.").exists()


@pytest.mark.django_db
def test_a_row_for_an_existing_family_is_granted():
    family = FamilyFactory()
    row = _grant(family.pk)
    assert (row.family_id, row.origin) == (family.pk, Entitlement.Origin.MANUAL)


@pytest.mark.django_db
def test_a_row_for_a_deleted_family_is_unknown_family_not_entitlement_exists():
    family = FamilyFactory()
    family_id = family.pk
    family.delete()
    with pytest.raises(InvalidEntitlementInput) as raised:
        _grant(family_id)
    _assert_unknown_family(raised)


def _blocked(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_family_deleted_while_the_row_is_granted_is_unknown_family():
    """The delete is in flight (uncommitted) when the grant starts, and commits only once the
    grant waits on it: a check made before the grant's transaction would see the family, insert,
    and fail on the foreign key at commit."""
    family = FamilyFactory()
    plan_with(["calendar"], id="single_x")
    granter_pid: list[int] = []
    pid_known, delete_open = threading.Event(), threading.Event()
    outcome: dict = {}

    def delete_family():
        try:
            pid_known.wait(10)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {Family._meta.db_table} WHERE id = %s", [family.pk])  # noqa: S608
                delete_open.set()
                deadline = time.monotonic() + 10
                while not _blocked(granter_pid[0]):
                    assert time.monotonic() < deadline, "the grant never waited on the delete"
                    time.sleep(0.01)
        finally:
            connection.close()

    def grant():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                granter_pid.append(cursor.fetchone()[0])
            pid_known.set()
            delete_open.wait(10)
            services.entitlement_create(
                user_id="u1", feature_code="calendar", plan_id="single_x", family_id=family.pk
            )
            outcome["result"] = "granted"
        except Exception as error:  # noqa: BLE001 (the test asserts which one)
            outcome["result"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=delete_family), threading.Thread(target=grant)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    error = outcome["result"]
    assert isinstance(error, InvalidEntitlementInput), error
    assert error.errors == {"family_id": ["Unknown family."]}
    assert not Family.objects.filter(pk=family.pk).exists()
    assert not Entitlement.objects.exists()
