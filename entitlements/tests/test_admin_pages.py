"""Grant a plan, extend, revoke and "why" in admin: through the services, with a reason, and
refused (403) to staff without the permission."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from entitlements import services
from entitlements.models import Entitlement, FamilyMember
from entitlements.selectors import entitlement_check
from entitlements.tests.factories import plan_with
from jia_payments.core.models import OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def family_plan():
    return plan_with(
        ["calendar", "chat", "storage"], id="family_monthly", max_users=4, billing_cycle="monthly"
    )


def _grant(client, **fields):
    return client.post(reverse("admin:entitlements_grant_plan"), fields)


def test_granting_a_family_plan_grants_every_feature_with_the_reason(as_staff, family_plan, committed):
    client = as_staff("sue", "support")
    with committed():
        response = _grant(client, user_id="owner_1", plan="family_monthly", reason="compensation for outage")
    assert response.status_code == 302
    rows = Entitlement.objects.filter(user_id="owner_1")
    assert sorted(rows.values_list("feature_id", flat=True)) == ["calendar", "chat", "storage"]
    family = rows.first().family
    assert family is not None and family.owner_user_id == "owner_1"
    assert {r.expires_at.date() for r in rows} == {(timezone.now() + timedelta(days=31)).date()} or all(
        r.expires_at > timezone.now() + timedelta(days=27) for r in rows
    )
    events = OutboxEvent.objects.filter(type="entitlement.created").count()
    assert events == 3
    entries = LogEntry.objects.filter(object_pk__in=[str(r.pk) for r in rows])
    assert entries.count() == 3
    assert {(e.actor.username, e.additional_data["reason"]) for e in entries} == {
        ("sue", "compensation for outage")
    }
    with committed():
        services.family_member_add(family_id=family.pk, user_id="kid_1")
    assert entitlement_check(user_id="kid_1", feature_code="chat")["has_access"] is True


def test_a_family_id_for_a_single_plan_is_refused(as_staff):
    plan_with(["calendar"], id="solo", max_users=1)
    client = as_staff("sue", "support")
    page = _grant(
        client, user_id="u", plan="solo", family_id="6f1c1f8e-2a4b-4f5e-9a77-0d3c8f0b2a10", reason="x"
    )
    assert page.status_code == 200 and "is not a family plan" in page.content.decode()
    assert not Entitlement.objects.exists()


def test_revoking_in_admin_writes_what_the_api_status_call_writes(
    as_staff, staff_client, committed, family_plan
):
    [api_row, *_] = services.entitlements_grant_plan(user_id="a", plan=family_plan)
    [admin_row, *_] = services.entitlements_grant_plan(user_id="b", plan=family_plan)
    OutboxEvent.objects.all().delete()
    LogEntry.objects.all().delete()
    response = staff_client.post(
        f"/api/v1/entitlements/{api_row.pk}/status/",
        {"status": "cancelled", "reason": "abuse"},
        format="json",
    )
    assert response.status_code == 200
    client = as_staff("sue", "support")
    client.post(
        reverse("admin:entitlements_entitlement_changelist"),
        {"action": "cancel_selected", "_selected_action": [admin_row.pk], "reason": "abuse"},
    )

    def written(row):
        events = [
            (
                e.type,
                {k: v for k, v in e.envelope["data"].items() if k in ("status", "feature_code", "plan_id")},
            )
            for e in OutboxEvent.objects.filter(aggregate_id=str(row.pk))
        ]
        audit = [
            (e.changes_dict, e.additional_data["reason"])
            for e in LogEntry.objects.filter(object_pk=str(row.pk))
        ]
        return events, audit

    assert written(admin_row) == written(api_row)
    assert written(admin_row)[0] == [
        (
            "entitlement.updated",
            {"status": "cancelled", "feature_code": "calendar", "plan_id": "family_monthly"},
        )
    ]


def test_extending_sets_the_new_end_with_the_reason(as_staff, family_plan, committed):
    rows = services.entitlements_grant_plan(user_id="a", plan=family_plan)
    client = as_staff("sue", "support")
    ids = [row.pk for row in rows[:2]]
    page = client.post(
        reverse("admin:entitlements_entitlement_changelist"),
        {"action": "extend_selected", "_selected_action": ids},
    )
    assert page.status_code == 200 and "Extend entitlements" in page.content.decode()
    new_end = (timezone.now() + timedelta(days=90)).replace(microsecond=0, second=0)
    response = client.post(
        reverse("admin:entitlements_entitlement_changelist"),
        {
            "action": "extend_selected",
            "_selected_action": ids,
            "extend": "1",
            "expires_at": timezone.localtime(new_end).strftime("%Y-%m-%dT%H:%M"),
            "reason": "support goodwill",
        },
    )
    assert response.status_code == 302
    assert {r.expires_at for r in Entitlement.objects.filter(pk__in=ids)} == {new_end}
    assert Entitlement.objects.get(pk=rows[2].pk).expires_at == rows[2].expires_at
    reasons = {
        e.additional_data.get("reason")
        for e in LogEntry.objects.filter(object_pk__in=[str(i) for i in ids], action=LogEntry.Action.UPDATE)
    }
    assert reasons == {"support goodwill"}


def test_the_why_page_explains_every_row(as_staff, family_plan, committed):
    with committed():
        [calendar, *_] = services.entitlements_grant_plan(user_id="owner_1", plan=family_plan)
        services.family_member_add(family_id=calendar.family_id, user_id="kid_1")
    old = plan_with(["calendar"], id="old_plan")
    expired = services.entitlement_create(
        user_id="kid_1",
        feature_code="calendar",
        plan_id="old_plan",
        expires_at=timezone.now() + timedelta(days=1),
    )
    Entitlement.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert old
    client = as_staff("sue", "support")
    url = reverse("admin:entitlements_why")
    assert url == "/admin/entitlements/why/"
    html = client.get(url, {"user_id": "kid_1", "feature_code": "calendar"}).content.decode()
    assert '<td id="why-has-access">true</td>' in html and '<td id="why-reason">active</td>' in html
    assert f"entitlement {calendar.pk}, plan family_monthly, family {calendar.family_id}" in html
    assert f"through family {calendar.family_id}" in html
    assert "grants access (until" in html and ": the answer&#x27;s source" in html
    assert "expired on" in html and "another feature (chat)" in html
    assert reverse("admin:entitlements_entitlement_change", args=[expired.pk]) in html
    owner = client.get(url, {"user_id": "owner_1", "feature_code": "storage"}).content.decode()
    assert '<td id="why-has-access">true</td>' in owner
    nobody = client.get(url, {"user_id": "nobody", "feature_code": "calendar"}).content.decode()
    assert '<td id="why-reason">no_entitlement</td>' in nobody and "No entitlement at all" in nobody
    assert FamilyMember.objects.filter(user_id="kid_1").exists()


def test_staff_without_the_permission_get_403(as_staff, family_plan):
    client = as_staff("nobody_special")
    assert (
        client.get(reverse("admin:entitlements_why"), {"user_id": "a", "feature_code": "b"}).status_code
        == 403
    )
    assert client.get(reverse("admin:entitlements_grant_plan")).status_code == 403
    assert _grant(client, user_id="u", plan="family_monthly", reason="x").status_code == 403
    assert not Entitlement.objects.exists()


def test_a_single_grant_of_a_feature_outside_the_plan_is_refused(admin_client, family_plan):
    plan_with(["vault"], id="vault_only")
    response = admin_client.post(
        reverse("admin:entitlements_entitlement_add"),
        {
            "user_id": "u1",
            "feature": "vault",
            "plan": "family_monthly",
            "status": "active",
            "granted_at_0": "2026-12-01",
            "granted_at_1": "00:00:00",
            "usage_limits": "{}",
            "metadata": "{}",
            "audit_reason": "x",
        },
    )
    assert response.status_code == 200
    assert (
        "&#x27;vault&#x27; is not a feature of plan &#x27;family_monthly&#x27;." in response.content.decode()
    )
    assert not Entitlement.objects.exists()


def test_granting_in_admin_writes_what_the_api_grant_writes(as_staff, staff_client, family_plan, committed):
    response = staff_client.post(
        "/api/v1/entitlements/grants/",
        {"user_id": "via_api", "plan_id": "family_monthly", "reason": "promotion"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="grant-1",
    )
    assert response.status_code == 201, response.content
    client = as_staff("sue", "support")
    assert _grant(client, user_id="via_admin", plan="family_monthly", reason="promotion").status_code == 302

    def written(user_id):
        rows = Entitlement.objects.filter(user_id=user_id)
        events = sorted(
            (
                e.type,
                e.envelope["data"]["feature_code"],
                e.envelope["data"]["plan_id"],
                e.envelope["data"]["status"],
            )
            for e in OutboxEvent.objects.filter(aggregate_id__in=[str(r.pk) for r in rows])
        )
        audit = sorted(
            (e.content_type.model, e.get_action_display(), e.additional_data.get("reason"))
            for e in LogEntry.objects.filter(object_pk__in=[str(r.pk) for r in rows])
        )
        return events, audit

    assert written("via_admin") == written("via_api")
    assert len(written("via_admin")[0]) == 3


def test_the_list_names_each_rows_family_by_its_owner_and_reads_the_families_with_the_rows(
    as_staff, family_plan
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = as_staff("sue", "support")
    url = reverse("admin:entitlements_entitlement_changelist")
    services.entitlements_grant_plan(user_id="owner_a", plan=family_plan)
    client.get(url)  # the session and permissions, once
    with CaptureQueriesContext(connection) as one_family:
        client.get(url)
    for owner in ("owner_b", "owner_c", "owner_d"):
        services.entitlements_grant_plan(user_id=owner, plan=family_plan)
    with CaptureQueriesContext(connection) as four_families:
        html = client.get(url).content.decode()
    assert len(four_families) == len(one_family)
    family = Entitlement.objects.filter(user_id="owner_b").first().family
    link = reverse("admin:entitlements_family_change", args=[family.pk])
    assert (
        f'<td class="field-family_owner"><a href="{link}" title="family {family.pk}">of owner_b</a></td>'
        in html
    )
    assert '<td class="field-origin_short">Plan grant</td>' in html  # its explanation is the filter's
