"""Family seats (the database decides who gets the last one) and who may see or manage a family."""

import threading
import uuid

import pytest
from django.db import connection

from entitlements import selectors, services
from entitlements.errors import AlreadyMember, NotFamilyOwner, OwnerCannotLeave, PlanFull
from entitlements.models import Family, FamilyMember
from entitlements.services import entitlements_grant_plan
from entitlements.tests.factories import FamilyMemberFactory, OwnedFamilyFactory, plan_with
from jia_payments.core.api.errors import NotFound


def _family(max_users: int) -> Family:
    plan = plan_with(["calendar"], max_users=max_users)
    entitlements_grant_plan(user_id="owner", plan=plan, subscription_id=f"sub_{uuid.uuid4().hex}")
    return Family.objects.get(owner_user_id="owner", plan=plan)


def _members(family: Family) -> list[tuple[str, str]]:
    return list(FamilyMember.objects.filter(family=family).values_list("user_id", "role"))


@pytest.mark.django_db
def test_the_owner_counts_as_a_seat_and_the_last_seat_is_409_plan_full():
    family = _family(max_users=3)
    services.family_member_add(family_id=family.pk, user_id="kid_1")
    services.family_member_add(family_id=family.pk, user_id="kid_2")

    with pytest.raises(PlanFull) as raised:
        services.family_member_add(family_id=family.pk, user_id="kid_3")

    assert (raised.value.status, raised.value.code) == (409, "plan_full")
    assert _members(family) == [("owner", "owner"), ("kid_1", "member"), ("kid_2", "member")]
    family.refresh_from_db()
    assert family.member_count == 3


@pytest.mark.django_db
def test_adding_a_member_twice_is_409_and_takes_no_seat():
    family = _family(max_users=3)
    services.family_member_add(family_id=family.pk, user_id="kid_1")
    with pytest.raises(AlreadyMember):
        services.family_member_add(family_id=family.pk, user_id="kid_1")
    with pytest.raises(AlreadyMember):
        services.family_member_add(family_id=family.pk, user_id="owner")
    family.refresh_from_db()
    assert family.member_count == 2


@pytest.mark.django_db
def test_removal_frees_the_seat_and_the_owner_cannot_be_removed():
    family = _family(max_users=2)
    services.family_member_add(family_id=family.pk, user_id="kid_1")
    services.family_member_remove(family_id=family.pk, user_id="kid_1")
    services.family_member_add(family_id=family.pk, user_id="kid_2")

    with pytest.raises(OwnerCannotLeave):
        services.family_member_remove(family_id=family.pk, user_id="owner")
    with pytest.raises(NotFound):
        services.family_member_remove(family_id=family.pk, user_id="kid_1")
    assert _members(family) == [("owner", "owner"), ("kid_2", "member")]


@pytest.mark.django_db
def test_unknown_family_is_not_found():
    with pytest.raises(NotFound):
        services.family_member_add(family_id=uuid.uuid4(), user_id="kid")


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_adds_never_exceed_max_users():
    family = _family(max_users=6)  # the owner and five more
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def add(n: int) -> None:
        try:
            barrier.wait()
            services.family_member_add(family_id=family.pk, user_id=f"kid_{n}")
            outcome = "added"
        except PlanFull:
            outcome = "plan_full"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["added"] * 5 + ["plan_full"] * 5
    family.refresh_from_db()
    assert family.member_count == 6
    assert FamilyMember.objects.filter(family=family).count() == 6


@pytest.mark.django_db
def test_who_may_see_and_manage_a_family():
    family = OwnedFamilyFactory(owner_user_id="owner")
    FamilyMemberFactory(family=family, user_id="kid")

    def lookup(user_id, *, privileged=False, manage=False):
        return selectors.family_for_caller(
            family_id=family.pk, user_id=user_id, privileged=privileged, manage=manage
        )

    assert lookup("owner", manage=True) == family
    assert lookup("kid") == family
    assert lookup("service:crm", privileged=True, manage=True) == family
    with pytest.raises(NotFamilyOwner) as raised:
        lookup("kid", manage=True)
    assert (raised.value.status, raised.value.code) == (403, "permission_denied")
    for stranger in ({"manage": False}, {"manage": True}):
        with pytest.raises(NotFound):
            lookup("stranger", **stranger)
    with pytest.raises(NotFound):
        selectors.family_for_caller(family_id=uuid.uuid4(), user_id="owner", privileged=True)
    assert selectors.family_find(family_id=uuid.uuid4()) is None
    assert list(FamilyMember.objects.filter(family=family).values_list("user_id", "role")) == [
        ("owner", "owner"),
        ("kid", "member"),
    ]
