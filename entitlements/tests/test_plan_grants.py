"""Plan grants without a checkout: every feature of a plan at once, through the service a
purchase grants with; a family plan's family created for its owner; revoked as one."""

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from entitlements.models import Entitlement, Family, FamilyMember
from pricing.selectors import plan_period_end

pytestmark = pytest.mark.django_db

GRANTS = "/api/v1/entitlements/grants/"
CHECK = "/api/v1/entitlements/check/"


@pytest.fixture(autouse=True)
def _catalog():
    call_command("loaddata", "catalog", verbosity=0)


def _grant(client, key: str | None = None, **body):
    body = {"user_id": "user_promo", "plan_id": "premium_monthly", "reason": "spring promotion", **body}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(GRANTS, body, format="json", **headers)


def _access(client_for, user_id: str, feature: str = "ai_assistant") -> dict:
    return client_for(user_id).get(CHECK, {"feature_code": feature}).json()


def test_a_service_grants_every_feature_of_a_plan_for_its_period(service_client, api_client_for):
    before = timezone.now()
    response = _grant(service_client, key="promo-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"grant_id", "user_id", "plan_id", "family_id", "expires_at", "entitlements"}
    assert (body["user_id"], body["plan_id"], body["family_id"]) == ("user_promo", "premium_monthly", None)
    rows = Entitlement.objects.filter(grant_id=body["grant_id"])
    assert rows.count() == len(body["entitlements"]) == 9
    [expires_at] = {row.expires_at for row in rows}
    assert (
        plan_period_end(billing_cycle="monthly", starts_at=before)
        <= expires_at
        <= plan_period_end(billing_cycle="monthly", starts_at=timezone.now())
    )
    assert {(r.status, r.origin, r.subscription_id, r.payment_id) for r in rows} == {
        ("active", "plan", "", None)
    }
    access = _access(api_client_for, "user_promo")
    assert (access["has_access"], access["source"]["plan_id"]) == (True, "premium_monthly")


def test_the_same_key_answers_the_first_grant_again_and_another_body_is_422(service_client):
    first = _grant(service_client, key="promo-2")
    again = _grant(service_client, key="promo-2")
    assert (again.status_code, again.json()) == (201, first.json())
    assert Entitlement.objects.filter(user_id="user_promo").count() == 9
    other = _grant(service_client, key="promo-2", user_id="user_other")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert not Entitlement.objects.filter(user_id="user_other").exists()


def test_lifetime_and_a_given_end(staff_client):
    lifetime = _grant(staff_client, expires_at=None)
    assert lifetime.status_code == 201, lifetime.content
    assert lifetime.json()["expires_at"] is None
    end = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    given = _grant(staff_client, user_id="user_ten", expires_at=end.isoformat())
    assert {r.expires_at for r in Entitlement.objects.filter(grant_id=given.json()["grant_id"])} == {end}


def test_a_family_plan_grant_makes_the_family_and_its_members_get_access(
    service_client, api_client_for, django_capture_on_commit_callbacks
):
    response = _grant(service_client, user_id="parent_1", plan_id="family_monthly", reason="migration")
    assert response.status_code == 201, response.content
    family = Family.objects.get(pk=response.json()["family_id"])
    assert (family.owner_user_id, family.plan_id, family.member_count) == ("parent_1", "family_monthly", 1)
    assert FamilyMember.objects.get(family=family).role == "owner"
    added = api_client_for("parent_1").post(
        f"/api/v1/families/{family.pk}/members/", {"user_id": "kid_1"}, format="json"
    )
    assert added.status_code == 201, added.content
    assert _access(api_client_for, "kid_1", "priority_support")["has_access"] is True

    with django_capture_on_commit_callbacks(execute=True):  # the members' cached answers dropped
        revoked = service_client.delete(
            f"{GRANTS}{response.json()['grant_id']}/", {"reason": "migration undone"}, format="json"
        )
    assert revoked.status_code == 204
    assert _access(api_client_for, "kid_1", "priority_support")["has_access"] is False
    assert _access(api_client_for, "parent_1")["reason"] == "revoked"
    assert set(Entitlement.objects.filter(family=family).values_list("status", "status_reason")) == {
        ("cancelled", "migration undone")
    }


def test_a_grant_into_an_existing_family_of_the_user(service_client):
    first = _grant(service_client, user_id="parent_2", plan_id="family_monthly")
    family_id = first.json()["family_id"]
    second = _grant(service_client, user_id="parent_2", plan_id="family_monthly", family_id=family_id)
    assert second.status_code == 201, second.content
    assert second.json()["family_id"] == family_id
    assert Family.objects.filter(owner_user_id="parent_2").count() == 1
    stranger = _grant(service_client, user_id="stranger", plan_id="family_monthly", family_id=family_id)
    assert stranger.status_code == 409
    assert not Entitlement.objects.filter(user_id="stranger").exists()


def test_revoking_one_grant_leaves_another(service_client, api_client_for):
    one = _grant(service_client, user_id="user_two").json()["grant_id"]
    _grant(service_client, user_id="user_two", plan_id="premium_yearly")
    assert service_client.delete(f"{GRANTS}{one}/?reason=duplicate").status_code == 204
    access = _access(api_client_for, "user_two")
    assert (access["has_access"], access["source"]["plan_id"]) == (True, "premium_yearly")
    assert service_client.delete(f"{GRANTS}{one}/").status_code == 204  # again: nothing more to do


def test_refusals_change_nothing(user_client, service_client):
    assert _grant(user_client, user_id="user_alice").status_code == 403
    unknown = _grant(service_client, plan_id="no_such_plan")
    assert unknown.status_code == 422 and "plan_id" in unknown.json()["errors"]  # well-formed
    not_family = _grant(service_client, family_id=str(uuid.uuid4()))
    assert not_family.status_code == 422 and "family_id" in not_family.json()["errors"]
    past = _grant(service_client, expires_at="2020-01-01T00:00:00Z")
    assert past.status_code == 422 and "expires_at" in past.json()["errors"]
    no_reason = service_client.post(GRANTS, {"user_id": "u", "plan_id": "premium_monthly"}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["errors"]
    assert not Entitlement.objects.exists()
    assert service_client.delete(f"{GRANTS}{uuid.uuid4()}/").status_code == 404
    assert service_client.delete(f"{GRANTS}not-a-uuid/").status_code == 404
    assert user_client.delete(f"{GRANTS}{uuid.uuid4()}/").status_code == 403


def test_a_move_to_a_plan_with_fewer_seats_lets_the_newest_members_go(django_capture_on_commit_callbacks):
    from entitlements.selectors import family_user_ids
    from entitlements.services import entitlements_grant_plan as grant_plan
    from entitlements.services import family_member_add
    from entitlements.tests.factories import plan_with

    big = plan_with(["calendar", "vault"], max_users=4, billing_cycle="monthly")
    small = plan_with(["calendar"], max_users=2, billing_cycle="monthly")
    end = timezone.now() + timedelta(days=20)
    [row, _] = grant_plan(user_id="owner_s", plan=big, subscription_id="sub_seats", expires_at=end)
    for kid in ("kid_a", "kid_b", "kid_c"):
        family_member_add(family_id=row.family_id, user_id=kid)
    with django_capture_on_commit_callbacks(execute=True):
        grant_plan(user_id="owner_s", plan=small, subscription_id="sub_seats", expires_at=end)
    family = Family.objects.get(pk=row.family_id)
    assert (family.plan_id, family.member_count) == (small.pk, 2)
    assert family_user_ids(family_ids={family.pk}) == {"owner_s", "kid_a"}
