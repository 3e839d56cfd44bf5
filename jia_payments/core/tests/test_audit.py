"""The audit trail: each kind of change staff (admin) and the API's service/staff callers
make is recorded with who made it, before and after, and the reason they gave."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from entitlements import services as entitlement_services
from entitlements.models import Entitlement, Family, FamilyMember
from entitlements.tests.factories import plan_with
from jia_payments.core.audit.trail import audit_context, record_changes
from payments.models import Payment, Refund
from payments.stripe import gateway
from payments.tests.factories import PaymentFactory, charged_payment
from pricing.models import Feature, Plan, PricingZone
from pricing.tests.factories import FeatureFactory, PricingZoneFactory

pytestmark = pytest.mark.django_db

CREATE, UPDATE, DELETE = LogEntry.Action.CREATE, LogEntry.Action.UPDATE, LogEntry.Action.DELETE


def entries(obj) -> list[LogEntry]:
    """The audit entries of `obj`, oldest first."""
    return list(LogEntry.objects.get_for_object(obj).order_by("timestamp", "pk"))


def last(obj) -> LogEntry:
    return entries(obj)[-1]


def who(entry: LogEntry) -> tuple:
    data = entry.additional_data or {}
    return (entry.actor.username if entry.actor else None, data.get("actor"), data.get("role"))


# --- API calls: the Principal of the token is the actor ---------------------------------------


def test_a_zone_put_by_a_staff_token_is_recorded_with_before_and_after(staff_client):
    body = {"country": "India", "zone": "C", "zone_name": "Mid-Low", "pricing_multiplier": "0.40"}
    assert staff_client.put("/api/v1/pricing-zones/IN/", body, format="json").status_code == 201
    response = staff_client.put(
        "/api/v1/pricing-zones/IN/", {**body, "pricing_multiplier": "0.55"}, format="json"
    )
    assert response.status_code == 200
    zone = PricingZone.objects.get(iso_code="IN")
    created, updated = entries(zone)
    assert (created.action, created.changes_dict["iso_code"]) == (CREATE, ["None", "IN"])
    assert (updated.action, updated.changes_dict) == (UPDATE, {"pricing_multiplier": ["0.40", "0.55"]})
    assert who(updated) == (None, "staff:staff_bob", "staff")
    assert updated.actor_email == "staff:staff_bob"
    assert updated.additional_data["request"] == "PUT /api/v1/pricing-zones/IN/"
    assert updated.cid == response["X-Request-ID"]  # leads to the request's log lines


def test_a_zone_deleted_by_a_staff_token_is_recorded(staff_client):
    zone = PricingZoneFactory(iso_code="KE", country="Kenya")
    assert staff_client.delete("/api/v1/pricing-zones/KE/").status_code == 204
    deleted = last(zone)
    assert (deleted.action, who(deleted)) == (DELETE, (None, "staff:staff_bob", "staff"))


def test_a_zone_put_records_its_reason(staff_client):
    body = {"country": "India", "zone": "C", "zone_name": "Mid-Low", "pricing_multiplier": "0.40"}
    response = staff_client.put(
        "/api/v1/pricing-zones/IN/", {**body, "reason": "World Bank 2026"}, format="json"
    )
    assert response.status_code == 201
    assert last(PricingZone.objects.get(iso_code="IN")).additional_data["reason"] == "World Bank 2026"
    assert "reason" not in response.json()


def test_a_zone_delete_records_its_reason_from_the_query_or_the_body(staff_client):
    kenya = PricingZoneFactory(iso_code="KE", country="Kenya")
    france = PricingZoneFactory(iso_code="FR", country="France")
    assert staff_client.delete("/api/v1/pricing-zones/KE/?reason=merged+into+zone+B").status_code == 204
    assert (
        staff_client.delete("/api/v1/pricing-zones/FR/", {"reason": "typo"}, format="json").status_code == 204
    )
    assert last(kenya).additional_data["reason"] == "merged into zone B"
    assert last(france).additional_data["reason"] == "typo"
    long = staff_client.delete(f"/api/v1/pricing-zones/XK/?reason={'x' * 501}")
    assert long.status_code == 400


def test_a_bulk_upsert_records_one_reason_for_every_zone_and_still_takes_a_bare_list(staff_client):
    zone = {"country": "India", "zone": "C", "zone_name": "Mid-Low", "pricing_multiplier": "0.40"}
    body = {"reason": "yearly update", "zones": [{**zone, "iso_code": "IN"}, {**zone, "iso_code": "KE"}]}
    response = staff_client.post("/api/v1/pricing-zones/bulk-upsert/", body, format="json")
    assert (response.status_code, response.json()) == (200, {"created": 2, "updated": 0})
    for code in ("IN", "KE"):
        assert last(PricingZone.objects.get(iso_code=code)).additional_data["reason"] == "yearly update"
    bare = [{**zone, "iso_code": "IN", "pricing_multiplier": "0.45"}]
    response = staff_client.post("/api/v1/pricing-zones/bulk-upsert/", bare, format="json")
    assert (response.status_code, response.json()) == (200, {"created": 0, "updated": 1})
    assert "reason" not in last(PricingZone.objects.get(iso_code="IN")).additional_data
    per_zone = {"zones": [{**zone, "iso_code": "FR", "reason": "not here"}]}
    assert staff_client.post("/api/v1/pricing-zones/bulk-upsert/", per_zone, format="json").status_code == 400


def test_a_grant_by_a_service_token_records_its_reason(service_client):
    plan_with(["calendar"], id="premium")
    body = {"user_id": "u1", "feature_code": "calendar", "plan_id": "premium", "reason": "support ticket 42"}
    response = service_client.post("/api/v1/entitlements/", body, format="json")
    assert response.status_code == 201, response.json()
    [entry] = entries(Entitlement.objects.get(pk=response.json()["id"]))
    assert entry.action == CREATE
    assert who(entry) == (None, "service:svc_family_app", "service")
    assert entry.additional_data["reason"] == "support ticket 42"
    assert (entry.changes_dict["user_id"], entry.changes_dict["status"]) == (
        ["None", "u1"],
        ["None", "active"],
    )


def test_a_revoke_by_a_staff_token_records_before_after_and_reason(staff_client):
    plan = plan_with(["calendar"], id="premium")
    row = entitlement_services.entitlement_create(user_id="u1", feature_code="calendar", plan_id=plan.pk)
    response = staff_client.post(
        f"/api/v1/entitlements/{row.pk}/status/",
        {"status": "cancelled", "reason": "chargeback"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    revoke = last(row)
    assert revoke.changes_dict == {"status": ["active", "cancelled"], "status_reason": ["", "chargeback"]}
    assert who(revoke) == (None, "staff:staff_bob", "staff")
    assert revoke.additional_data["reason"] == "chargeback"


def test_a_new_expiry_by_a_service_token_is_recorded(service_client):
    plan = plan_with(["calendar"], id="premium")
    row = entitlement_services.entitlement_create(user_id="u1", feature_code="calendar", plan_id=plan.pk)
    response = service_client.post(
        f"/api/v1/entitlements/{row.pk}/expiry/", {"expires_at": "2031-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 200
    change = last(row)
    assert change.changes_dict == {"expires_at": ["None", "2031-01-01 00:00:00"]}
    assert who(change) == (None, "service:svc_family_app", "service")


def test_a_payment_status_move_by_a_service_token_is_recorded(service_client):
    payment = PaymentFactory()
    response = service_client.post(
        f"/api/v1/payments/{payment.pk}/status/",
        {"status": "failed", "failure_reason": "card_declined"},
        format="json",
    )
    assert response.status_code == 200
    move = last(payment)
    assert move.changes_dict == {"status": ["pending", "failed"], "failure_reason": ["", "card_declined"]}
    assert who(move) == (None, "service:svc_family_app", "service")


def test_family_seats_moved_by_the_api_are_recorded(api_client_for):
    plan = plan_with(["calendar"], id="family", max_users=3)
    entitlement_services.entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sub_f")
    family = Family.objects.get()
    owner = api_client_for("owner")
    assert (
        owner.post(f"/api/v1/families/{family.pk}/members/", {"user_id": "kid"}, format="json").status_code
        == 201
    )
    assert owner.delete(f"/api/v1/families/{family.pk}/members/kid/").status_code == 204
    *_, added, removed = entries(family)
    assert (added.changes_dict, added.additional_data["member_added"]) == (
        {"member_count": ["1", "2"]},
        "kid",
    )
    assert (removed.changes_dict, removed.additional_data["member_removed"]) == (
        {"member_count": ["2", "1"]},
        "kid",
    )
    assert who(removed) == (None, "user:owner", "user")
    member_entries = LogEntry.objects.get_for_model(FamilyMember).order_by("timestamp", "pk")
    assert [(e.action, e.object_repr) for e in member_entries][-2:] == [
        (CREATE, f"kid in {family.pk}"),
        (DELETE, f"kid in {family.pk}"),
    ]


def test_a_refund_by_a_service_token_records_its_reason_on_every_change(service_client, localstripe):
    payment = charged_payment(localstripe, description="audit")
    response = service_client.post(
        f"/api/v1/payments/{payment.pk}/refund/", {"reason": "duplicate order"}, format="json"
    )
    assert response.status_code == 200, response.json()
    refund = Refund.objects.get()
    refund_created, refund_settled = entries(refund)
    assert refund_created.changes_dict["reason"] == ["None", "duplicate order"]
    assert refund_settled.changes_dict["status"] == ["pending", "succeeded"]
    amount, status = entries(payment)[-2:]
    assert amount.changes_dict == {"refunded_amount": ["0", "2000"]}
    assert status.changes_dict == {"status": ["completed", "refunded"]}
    for entry in (refund_created, refund_settled, amount, status):
        assert who(entry) == (None, "service:svc_family_app", "service")
        assert entry.additional_data["reason"] == "duplicate order"


def test_a_refund_retried_by_beat_names_who_asked_for_it(service_client, localstripe, monkeypatch):
    payment = charged_payment(localstripe, description="audit")

    def down(**kwargs):
        raise gateway.StripeUnavailable()

    with monkeypatch.context() as patched:
        patched.setattr(gateway, "refund_create", down)
        response = service_client.post(
            f"/api/v1/payments/{payment.pk}/refund/", {"reason": "duplicate order"}, format="json"
        )
    assert response.status_code == 503, response.json()
    Refund.objects.update(created_at=timezone.now() - timedelta(hours=1))
    from payments.refunds import refunds_retry_pending

    assert refunds_retry_pending() == 1  # beat's task: no request, no audit context of its own
    refund = Refund.objects.get()
    settled = entries(refund)[-1]
    assert settled.changes_dict["status"] == ["pending", "succeeded"]
    assert who(settled)[1] == "service:svc_family_app"
    assert settled.additional_data["reason"] == "duplicate order"
    assert settled.cid == response["X-Request-ID"]
    assert entries(payment)[-1].additional_data["actor"] == "service:svc_family_app"


def test_an_entitlement_check_writes_no_audit_entry(user_client):
    plan_with(["calendar"], id="premium")
    entitlement_services.entitlement_create(user_id="user_alice", feature_code="calendar", plan_id="premium")
    before = LogEntry.objects.count()
    response = user_client.get("/api/v1/entitlements/check/", {"feature_code": "calendar"})
    assert response.json()["has_access"] is True
    assert LogEntry.objects.count() == before


# --- work outside a request: the sweeper names itself -----------------------------------------


def test_the_expiry_sweeper_audits_each_row_of_a_batch_in_one_insert(django_assert_num_queries):
    plan = plan_with(["calendar", "chat"], id="premium")
    rows = [
        entitlement_services.entitlement_create(
            user_id=f"u{n}",
            feature_code=code,
            plan_id=plan.pk,
            expires_at=timezone.now() + timedelta(hours=1),
        )
        for n in range(3)
        for code in ("calendar", "chat")
    ]
    Entitlement.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before = LogEntry.objects.count()
    assert entitlement_services.entitlements_expire_due(batch_size=4) == 6
    assert LogEntry.objects.count() == before + 6
    for row in rows:
        expiry = last(row)
        assert expiry.changes_dict == {
            "status": ["active", "expired"],
            "status_reason": ["", "expires_at passed"],
        }
        assert who(expiry) == (None, "system:expiry-sweeper", None)


def test_a_subscription_cancelled_by_stripe_is_recorded_per_row():
    plan = plan_with(["calendar", "chat"], id="premium")
    rows = entitlement_services.entitlements_grant_plan(user_id="u1", plan=plan, subscription_id="sub_1")
    with audit_context(actor="stripe:customer.subscription.deleted"):
        entitlement_services.entitlements_cancel_for_subscription(subscription_id="sub_1", reason="canceled")
    for row in rows:
        cancel = last(row)
        assert cancel.changes_dict == {"status": ["active", "cancelled"], "status_reason": ["", "canceled"]}
        assert who(cancel) == (None, "stripe:customer.subscription.deleted", None)


def test_record_changes_skips_unchanged_fields_and_rows():
    zone = PricingZoneFactory()
    with audit_context(actor="system:import", reason="yearly update"):
        assert record_changes(PricingZone, [(zone.pk, str(zone), {"zone": ("C", "C")})]) == 0
        assert (
            record_changes(PricingZone, [(zone.pk, str(zone), {"zone": ("C", "B"), "country": (1, 1)})]) == 1
        )
    entry = last(zone)
    assert entry.changes_dict == {"zone": ["C", "B"]}
    assert (entry.additional_data["actor"], entry.additional_data["reason"]) == (
        "system:import",
        "yearly update",
    )


# --- Django admin: the staff user is the actor ------------------------------------------------


def _zone_form(zone: PricingZone, **changes) -> dict:
    fields = [
        "country",
        "iso_code",
        "zone",
        "zone_name",
        "world_bank_classification",
        "gni_per_capita_threshold",
    ]
    return {
        **{f: getattr(zone, f) for f in fields},
        "pricing_multiplier": str(zone.pricing_multiplier),
        **changes,
    }


def test_a_zone_edited_in_admin_is_recorded_and_shown_next_to_it(admin_client, admin_user):
    zone = PricingZoneFactory()
    url = reverse("admin:pricing_pricingzone_change", args=[zone.pk])
    response = admin_client.post(
        url, _zone_form(zone, pricing_multiplier="0.45", audit_reason="World Bank 2026")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    change = last(zone)
    assert change.changes_dict == {"pricing_multiplier": ["0.40", "0.45"]}
    assert (change.actor, change.actor_email) == (admin_user, admin_user.email)
    assert (change.additional_data["actor"], change.additional_data["reason"]) == ("admin", "World Bank 2026")

    page = admin_client.get(url).content.decode()
    assert "Recent changes" in page and "0.40 \u2192 0.45" in page and "World Bank 2026" in page
    history = admin_client.get(reverse("admin:pricing_pricingzone_auditlog", args=[zone.pk]))
    assert history.status_code == 200
    assert "World Bank 2026" in history.content.decode() and "0.45" in history.content.decode()


def test_plan_features_changed_in_admin_are_recorded(admin_client, admin_user):
    plan = plan_with(["calendar"], id="premium")
    FeatureFactory(code="chat")
    form = {
        "name": plan.name,
        "description": "",
        "active": "on",
        "billing_cycle": plan.billing_cycle,
        "price_cents": "1299",
        "currency": "USD",
        "features": ["calendar", "chat"],
        "max_users": "1",
        "usage_limits": "{}",
        "metadata": "{}",
        "audit_reason": "spring offer",
    }
    response = admin_client.post(reverse("admin:pricing_plan_change", args=[plan.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    price, features = entries(Plan.objects.get(pk="premium"))[-2:]
    assert price.changes_dict == {"price_cents": ["999", "1299"]}
    assert features.changes_dict["features"] == {"type": "m2m", "operation": "add", "objects": ["chat"]}
    for entry in (price, features):
        assert (entry.actor, entry.additional_data["reason"]) == (admin_user, "spring offer")


def test_a_feature_edited_in_admin_is_recorded(admin_client, admin_user):
    feature = FeatureFactory(code="calendar", name="Calendar")
    url = reverse("admin:pricing_feature_change", args=["calendar"])
    response = admin_client.post(url, {"name": "Family calendar", "description": ""})
    assert response.status_code == 302
    change = last(Feature.objects.get(pk=feature.pk))
    assert (change.changes_dict, change.actor) == ({"name": ["Calendar", "Family calendar"]}, admin_user)


def test_a_revoke_in_admin_asks_for_a_reason_and_records_it(admin_client, admin_user):
    plan = plan_with(["calendar"], id="premium")
    row = entitlement_services.entitlement_create(user_id="u1", feature_code="calendar", plan_id=plan.pk)
    changelist = reverse("admin:entitlements_entitlement_changelist")
    action = {"action": "cancel_selected", "_selected_action": [row.pk]}
    refused = admin_client.post(changelist, action, follow=True)
    assert "Give a reason: nothing was cancelled." in refused.content.decode()
    assert Entitlement.objects.get(pk=row.pk).status == "active"

    admin_client.post(changelist, {**action, "reason": "fraud"})
    revoke = last(row)
    assert revoke.changes_dict == {"status": ["active", "cancelled"], "status_reason": ["", "fraud"]}
    assert (revoke.actor, revoke.additional_data["reason"]) == (admin_user, "fraud")


def test_a_grant_in_admin_records_its_reason(admin_client, admin_user):
    plan_with(["calendar"], id="premium")
    now = timezone.now()
    form = {
        "user_id": "u9",
        "feature": "calendar",
        "plan": "premium",
        "family": "",
        "status": "active",
        "status_reason": "",
        "subscription_id": "",
        "payment_id": "",
        "usage_limits": "{}",
        "metadata": "{}",
        "granted_at_0": now.strftime("%Y-%m-%d"),
        "granted_at_1": now.strftime("%H:%M:%S"),
        "expires_at_0": "",
        "expires_at_1": "",
        "audit_reason": "goodwill after outage",
    }
    response = admin_client.post(reverse("admin:entitlements_entitlement_add"), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    [grant] = entries(Entitlement.objects.get(user_id="u9"))
    assert (grant.action, grant.actor, grant.additional_data["reason"]) == (
        CREATE,
        admin_user,
        "goodwill after outage",
    )


def test_a_family_member_added_in_admin_is_recorded(admin_client, admin_user):
    plan = plan_with(["calendar"], id="family", max_users=3)
    entitlement_services.entitlements_grant_plan(user_id="owner", plan=plan, subscription_id="sub_f")
    family = Family.objects.get()
    owner_member = FamilyMember.objects.get()
    form = {
        "members-TOTAL_FORMS": "2",
        "members-INITIAL_FORMS": "1",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
        "members-0-id": owner_member.pk,
        "members-0-family": family.pk,
        "members-0-user_id": "owner",
        "members-1-id": "",
        "members-1-family": family.pk,
        "members-1-user_id": "kid",
        "audit_reason": "owner asked by phone",
    }
    response = admin_client.post(reverse("admin:entitlements_family_change", args=[family.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    seats = last(family)
    assert seats.changes_dict == {"member_count": ["1", "2"]}
    assert (seats.actor, seats.additional_data["reason"]) == (admin_user, "owner asked by phone")


def test_a_payment_edited_in_admin_is_recorded(admin_client, admin_user):
    # A payment's status moves in admin only through its actions (the form is read-only).
    payment = PaymentFactory()
    url = reverse("admin:payments_payment_move", args=[payment.pk, "cancelled"])
    response = admin_client.post(url, {"reason": "customer gave up"})
    assert response.status_code == 302, response.content.decode()[:3000]
    change = last(payment)
    assert change.changes_dict == {"status": ["pending", "cancelled"]}
    assert (change.actor, change.additional_data["reason"]) == (admin_user, "customer gave up")


def test_the_audit_log_list_names_api_callers(admin_client, staff_client):
    body = {"country": "Kenya", "zone": "D", "zone_name": "Low-Income", "pricing_multiplier": Decimal("0.25")}
    staff_client.put("/api/v1/pricing-zones/KE/", {**body, "pricing_multiplier": "0.25"}, format="json")
    page = admin_client.get(reverse("admin:auditlog_logentry_changelist")).content.decode()
    assert "staff:staff_bob" in page and "KE (D)" in page


# --- Work a caller starts and a Celery worker finishes ----------------------------------------


def _published(monkeypatch) -> list[dict]:
    """Send tasks for real (not eagerly) and keep each message as a worker would receive it (JSON
    round trip of body and headers) instead of handing it to the broker."""
    from celery import current_app
    from kombu import Producer

    sent: list[dict] = []

    def publish(self, body, **kwargs):
        sent.append(json.loads(json.dumps({"body": body, "headers": kwargs.get("headers") or {}})))

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    monkeypatch.setattr(Producer, "publish", publish)
    return sent


def _run_as_a_worker(message: dict) -> None:
    """Execute one captured message the way a worker process does (its request built from the
    message headers), outside any request or audit context."""
    from celery import current_app
    from celery.worker.request import Request
    from kombu.message import Message

    headers = message["headers"]
    task = current_app.tasks[headers["task"]]
    raw = Message(body=json.dumps(message["body"]), headers=headers, content_type="application/json",
                  content_encoding="utf-8")  # fmt: skip
    Request(raw, app=current_app, task=task, hostname="test-worker").execute()


@pytest.mark.django_db(transaction=True)
def test_a_plan_resync_run_by_a_worker_names_the_admin_who_changed_the_plan(
    admin_client, admin_user, monkeypatch
):
    plan = plan_with(["calendar"], id="premium")
    FeatureFactory(code="chat")
    Entitlement.objects.create(user_id="u1", feature_id="calendar", plan=plan, origin=Entitlement.Origin.PLAN)
    sent = _published(monkeypatch)
    form = {
        "name": plan.name,
        "description": "",
        "active": "on",
        "billing_cycle": plan.billing_cycle,
        "price_cents": str(plan.price_cents),
        "currency": plan.currency,
        "features": ["calendar", "chat"],
        "max_users": "1",
        "usage_limits": "{}",
        "metadata": "{}",
        "audit_reason": "spring offer",
    }
    response = admin_client.post(reverse("admin:pricing_plan_change", args=[plan.pk]), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    [message] = [m for m in sent if m["headers"]["task"] == "entitlements.sync_plan"]
    assert not Entitlement.objects.filter(feature_id="chat").exists()  # not run in the request
    _run_as_a_worker(message)
    chat = Entitlement.objects.get(user_id="u1", feature_id="chat")
    [granted] = entries(chat)
    assert granted.action == CREATE
    assert (granted.actor, granted.additional_data["actor"]) == (admin_user, admin_user.get_username())
    assert granted.additional_data["reason"] == "spring offer"
    assert granted.cid == response["X-Request-ID"]


def test_a_payment_created_by_the_api_is_recorded_without_reading_its_checkout_session(service_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from payments.models import CheckoutSession

    body = {"amount": 1999, "currency": "USD", "payment_method": "bank_transfer", "customer_id": "c_1"}
    with CaptureQueriesContext(connection) as queries:
        response = service_client.post("/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 201
    created = last(Payment.objects.get(pk=response.json()["id"]))
    assert created.action == CREATE
    assert created.changes_dict["amount"] == ["None", "1999"]
    assert "checkout_session" not in created.changes_dict
    sessions = CheckoutSession._meta.db_table
    assert not [q["sql"] for q in queries.captured_queries if f'"{sessions}"' in q["sql"]]


# --- what is recorded: columns, not the reverse side of another model's relation -------------------


def test_no_audited_model_records_a_reverse_relation():
    """A reverse relation (a payment's `refunds`) is no column of the row: auditlog recorded its
    manager's text on every create ("refunds: None → payments.Refund.None")."""
    from auditlog.registry import auditlog

    recorded = {}
    for model in auditlog.get_models():
        excluded = set(auditlog.get_model_fields(model)["exclude_fields"])
        reverse = {
            f.name
            for f in model._meta.get_fields()
            if f.auto_created and not f.concrete and not f.many_to_many  # auditlog skips many-to-many
        }
        if reverse - excluded:
            recorded[model._meta.label] = sorted(reverse - excluded)
    assert recorded == {}


def test_a_new_payments_audit_entry_lists_its_columns_only():
    payment = PaymentFactory()
    (created,) = entries(payment)
    assert "refunds" not in created.changes_dict
    assert {"amount", "currency", "status"} <= set(created.changes_dict)


def test_entries_written_before_keep_their_reverse_relation_but_admin_does_not_show_it(admin_client):
    """History stays as written; admin shows the columns (and a column since dropped), not the
    reverse side of a relation an older entry recorded."""
    payment = PaymentFactory(amount=1234)
    (created,) = entries(payment)
    columns = len(created.changes)
    created.changes = {
        **created.changes,
        "refunds": ["None", "payments.Refund.None"],
        "checkout_session": ["None", "None"],
        "dropped_column": ["None", "kept-in-history"],
    }
    created.save()
    pages = {
        "change page": reverse("admin:payments_payment_change", args=[payment.pk]),
        "object's audit log": reverse("admin:payments_payment_auditlog", args=[payment.pk]),
        "entry": reverse("admin:auditlog_logentry_change", args=[created.pk]),
        "entry list": reverse("admin:auditlog_logentry_changelist"),
    }
    for name, url in pages.items():
        html = admin_client.get(url).content.decode()
        assert "payments.Refund.None" not in html, name
        for hidden in ("refunds", "Refunds</td>", "checkout_session", "Checkout session</td>"):
            assert not re.search(rf"\b{hidden}\b(:|,| \.\.|</td>)", html), (name, hidden)
        if name == "entry list":  # "N changes: field, field, .."
            assert f"{columns + 1} changes: " in html
        else:
            assert re.search(r"\bdropped_column\b|Dropped column", html), name
            assert re.search(r"<td>1234</td>|amount: None \u2192 1234", html), name
    assert LogEntry.objects.get(pk=created.pk).changes["refunds"] == ["None", "payments.Refund.None"]
