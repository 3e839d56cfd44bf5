"""Writes made in Django admin go through the services: events, and no stale cached answer."""

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from entitlements import services
from entitlements.models import Entitlement, Family, FamilyMember
from entitlements.selectors import entitlement_check
from entitlements.tests.factories import plan_with
from jia_payments.core.models import OutboxEvent
from pricing.tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db


def _has(user_id: str, feature: str = "calendar") -> tuple[bool, str]:
    answer = entitlement_check(user_id=user_id, feature_code=feature)
    return answer["has_access"], answer["reason"]


def _split(value, name: str) -> dict:
    if value is None:
        return {f"{name}_0": "", f"{name}_1": ""}
    return {f"{name}_0": value.strftime("%Y-%m-%d"), f"{name}_1": value.strftime("%H:%M:%S")}


def _entitlement_form(row: Entitlement, **changes) -> dict:
    values = {
        "user_id": row.user_id,
        "feature": row.feature_id,
        "plan": row.plan_id,
        "family": row.family_id or "",
        "status": row.status,
        "status_reason": row.status_reason,
        "subscription_id": row.subscription_id,
        "payment_id": row.payment_id or "",
        "usage_limits": json.dumps(row.usage_limits),
        "metadata": json.dumps(row.metadata),
        "granted_at": row.granted_at,
        "expires_at": row.expires_at,
        **changes,
    }
    granted, expires = values.pop("granted_at"), values.pop("expires_at")
    return {**values, **_split(granted, "granted_at"), **_split(expires, "expires_at")}


@pytest.fixture
def granted(committed):
    plan = plan_with(["calendar"], id="premium_admin", usage_limits={"storage_gb": 5})
    with committed():
        [row] = services.entitlements_grant_plan(
            user_id="u1", plan=plan, subscription_id="s1", expires_at=timezone.now() + timedelta(days=9)
        )
        services.entitlements_grant_plan(
            user_id="bystander", plan=plan_with(["calendar"]), subscription_id="s2"
        )
    return row


def _warm(*user_ids: str) -> None:
    for user_id in user_ids:
        entitlement_check(user_id=user_id, feature_code="calendar")


def test_editing_the_status_in_admin_revokes_at_once(
    admin_client, granted, committed, django_assert_num_queries
):
    _warm("u1", "bystander")
    url = reverse("admin:entitlements_entitlement_change", args=[granted.pk])
    with committed():
        response = admin_client.post(
            url, _entitlement_form(granted, status="cancelled", status_reason="fraud")
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _has("u1") == (False, "revoked")
    with django_assert_num_queries(0):
        assert _has("bystander") == (True, "active")
    last = OutboxEvent.objects.filter(aggregate_id=str(granted.pk)).last()
    assert (last.type, last.envelope["data"]["status"]) == ("entitlement.updated", "cancelled")


def test_editing_the_expiry_in_admin_is_seen_at_once(admin_client, granted, committed):
    _warm("u1")
    past = timezone.now() - timedelta(days=1)
    url = reverse("admin:entitlements_entitlement_change", args=[granted.pk])
    with committed():
        admin_client.post(url, _entitlement_form(granted, expires_at=past))
    assert _has("u1") == (False, "expired")


def test_adding_an_entitlement_in_admin_grants_at_once(admin_client, granted, committed):
    _warm("u2")
    row = Entitlement(user_id="u2", feature_id="calendar", plan_id="premium_admin", granted_at=timezone.now())
    form = _entitlement_form(row, expires_at=None)
    with committed():
        response = admin_client.post(reverse("admin:entitlements_entitlement_add"), form)
    assert response.status_code == 302
    assert _has("u2") == (True, "active")
    created = Entitlement.objects.get(user_id="u2")
    assert OutboxEvent.objects.get(aggregate_id=str(created.pk)).type == "entitlement.created"


def test_a_manual_grant_is_granted_now_by_no_payment_or_subscription(admin_client, granted, committed):
    add = reverse("admin:entitlements_entitlement_add")
    page = admin_client.get(add).content.decode()
    assert all(f'name="{name}' not in page for name in ("payment_id", "subscription_id", "granted_at"))
    before = timezone.now()
    row = Entitlement(
        user_id="u3",
        feature_id="calendar",
        plan_id="premium_admin",
        granted_at=before - timedelta(days=400),
        subscription_id="sub_forged",
        payment_id=uuid.uuid4(),
    )
    with committed():
        response = admin_client.post(add, _entitlement_form(row, expires_at=None))
    assert response.status_code == 302
    created = Entitlement.objects.get(user_id="u3")
    assert (created.payment_id, created.subscription_id) == (None, "")
    assert created.granted_at >= before


def test_admin_actions_go_through_the_services(admin_client, granted, committed):
    _warm("u1", "bystander")
    changelist = reverse("admin:entitlements_entitlement_changelist")
    with committed():
        admin_client.post(
            changelist,
            {"action": "cancel_selected", "_selected_action": [granted.pk], "reason": "chargeback"},
        )
    assert _has("u1") == (False, "revoked")
    assert Entitlement.objects.get(pk=granted.pk).status_reason == "chargeback"
    with committed():
        admin_client.post(changelist, {"action": "reactivate_selected", "_selected_action": [granted.pk]})
    assert _has("u1") == (True, "active")
    assert _has("bystander") == (True, "active")


def test_entitlements_cannot_be_deleted_in_admin(admin_client, granted):
    url = reverse("admin:entitlements_entitlement_delete", args=[granted.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Entitlement.objects.filter(pk=granted.pk).exists()


# --- families ------------------------------------------------------------------------------------


@pytest.fixture
def family(committed):
    plan = plan_with(["calendar"], max_users=3)
    with committed():
        services.entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sf")
        family = Family.objects.get()
        services.family_member_add(family_id=family.pk, user_id="kid")
    return family


def _family_form(family: Family, *, delete: set[str] = frozenset(), add: str = "") -> dict:
    members = list(FamilyMember.objects.filter(family=family).order_by("added_at", "id"))
    data = {
        "members-TOTAL_FORMS": str(len(members) + 1),
        "members-INITIAL_FORMS": str(len(members)),
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    for index, member in enumerate(members):
        data[f"members-{index}-id"] = str(member.pk)
        data[f"members-{index}-family"] = str(family.pk)
        if member.user_id in delete:
            data[f"members-{index}-DELETE"] = "on"
    data[f"members-{len(members)}-family"] = str(family.pk)
    data[f"members-{len(members)}-user_id"] = add
    return data


def test_removing_a_member_in_admin_takes_access_away_at_once(admin_client, family, committed):
    _warm("kid", "owner")
    url = reverse("admin:entitlements_family_change", args=[family.pk])
    with committed():
        response = admin_client.post(url, _family_form(family, delete={"kid"}))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert _has("kid") == (False, "no_entitlement")
    assert _has("owner") == (True, "active")
    family.refresh_from_db()
    assert family.member_count == 1


def test_adding_a_member_in_admin_counts_the_seat(admin_client, family, committed):
    _warm("kid2")
    url = reverse("admin:entitlements_family_change", args=[family.pk])
    with committed():
        admin_client.post(url, _family_form(family, add="kid2"))
    assert _has("kid2") == (True, "active")
    response = admin_client.post(url, _family_form(family, add="kid3"), follow=True)
    assert "The family plan has no free seat" in response.content.decode()
    assert not FamilyMember.objects.filter(user_id="kid3").exists()
    family.refresh_from_db()
    assert family.member_count == 3


def test_the_owner_cannot_be_removed_in_admin(admin_client, family):
    url = reverse("admin:entitlements_family_change", args=[family.pk])
    response = admin_client.post(url, _family_form(family, delete={"owner"}), follow=True)
    assert "The family owner cannot be removed" in response.content.decode()
    assert FamilyMember.objects.filter(family=family, user_id="owner").exists()


# --- plan changes -----------------------------------------------------------------------------------


def _plan_form(plan, features, usage_limits=None) -> dict:
    return {
        "name": plan.name,
        "description": plan.description,
        "active": "on",
        "billing_cycle": plan.billing_cycle,
        "price_cents": plan.price_cents,
        "currency": plan.currency,
        "features": features,
        "max_users": plan.max_users,
        "usage_limits": json.dumps(plan.usage_limits if usage_limits is None else usage_limits),
        "metadata": json.dumps(plan.metadata),
    }


def test_a_feature_added_to_a_plan_in_admin_reaches_its_subscribers_and_families(admin_client, committed):
    plan = plan_with(["calendar"], max_users=3, usage_limits={"storage_gb": 5})
    FeatureFactory(code="vault")
    with committed():
        services.entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="s1")
        services.family_member_add(family_id=Family.objects.get().pk, user_id="kid")
        services.entitlements_grant_plan(
            user_id="outsider", plan=plan_with(["calendar"]), subscription_id="s2"
        )
    for user_id in ("owner", "kid", "outsider"):
        entitlement_check(user_id=user_id, feature_code="vault")

    url = reverse("admin:pricing_plan_change", args=[quote(plan.pk)])  # admin URLs escape "_XX"
    with committed():
        response = admin_client.post(url, _plan_form(plan, ["calendar", "vault"], {"storage_gb": 8}))
    assert response.status_code == 302, response.content.decode()[:3000]

    assert _has("owner", "vault") == (True, "active")
    assert _has("kid", "vault") == (True, "active")
    assert _has("outsider", "vault") == (False, "no_entitlement")
    assert entitlement_check(user_id="kid", feature_code="calendar")["usage_limits"] == {"storage_gb": 8}

    with committed():
        admin_client.post(url, _plan_form(plan, ["vault"], {"storage_gb": 8}))
    assert _has("kid", "calendar") == (False, "revoked")
    assert _has("owner", "vault") == (True, "active")
    with committed():
        admin_client.post(url, _plan_form(plan, ["calendar", "vault"], {"storage_gb": 8}))
    assert _has("kid", "calendar") == (True, "active")
    assert Entitlement.objects.filter(user_id="owner").count() == 2
