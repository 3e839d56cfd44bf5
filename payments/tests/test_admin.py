"""Payments in admin: nothing a form can post changes money; status and refunds move only through
the payments services, with the same events and audit entries as the API calls they mirror."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from entitlements.models import Entitlement
from entitlements.services import entitlements_grant_plan
from jia_payments.core.models import OutboxEvent
from payments.models import Payment, Refund, Subscription
from payments.stripe import gateway as stripe_gateway
from payments.tests.factories import (
    CheckoutSessionFactory,
    PaymentFactory,
    SubscriptionFactory,
    charged_payment,
)
from pricing.tests.factories import FeatureFactory, PlanFactory

pytestmark = pytest.mark.django_db

MONEY_FIELDS = ["amount", "currency", "customer_id", "order_id", "external_payment_id", "refunded_amount"]


def _row(payment: Payment) -> dict:
    payment.refresh_from_db()
    return {field: getattr(payment, field) for field in [*MONEY_FIELDS, "status", "metadata"]}


def _events(aggregate_id) -> list[tuple[str, dict]]:
    """The payment events written for one payment, without what differs by nature (ids, times)."""
    found = []
    for event in OutboxEvent.objects.filter(aggregate_id=str(aggregate_id)).order_by("id"):
        data = {
            k: v
            for k, v in event.envelope["data"].items()
            if k not in ("id", "order_id", "created_at", "updated_at")
        }
        found.append((event.type, data))
    return found


def _payment_audit(payment: Payment) -> list[dict]:
    entries = LogEntry.objects.filter(object_pk=str(payment.pk)).order_by("pk")
    return [{"changes": e.changes_dict, "reason": (e.additional_data or {}).get("reason")} for e in entries]


def test_a_crafted_post_cannot_change_a_payments_money(as_staff):
    client = as_staff("root", superuser=True)
    payment = PaymentFactory(status=Payment.Status.COMPLETED, external_payment_id="pi_123")
    before = _row(payment)
    response = client.post(
        reverse("admin:payments_payment_change", args=[payment.pk]),
        {
            "amount": 1,
            "currency": "JPY",
            "status": "refunded",
            "customer_id": "mallory",
            "order_id": "other",
            "external_payment_id": "pi_999",
            "refunded_amount": 0,
            "metadata": '{"stripe_subscription_id": "sub_x"}',
            "payment_method": "wallet",
        },
    )
    assert response.status_code == 403
    assert _row(payment) == before
    assert not OutboxEvent.objects.exists()


def test_the_payment_page_shows_money_in_currency_units_and_no_input(as_staff):
    client = as_staff("root", superuser=True)
    usd = PaymentFactory(amount=999, currency="USD")
    jpy = PaymentFactory(amount=500, currency="JPY")
    kwd = PaymentFactory(amount=1250, currency="KWD")
    listing = client.get(reverse("admin:payments_payment_changelist")).content.decode()
    for shown in ["9.99 USD", "500 JPY", "1.250 KWD"]:
        assert shown in listing
    page = client.get(reverse("admin:payments_payment_change", args=[usd.pk])).content.decode()
    assert "9.99 USD" in page
    # its name (title, breadcrumbs, audit log) is in currency units too, never "999 USD"
    assert "<h2>9.99 USD (pending)</h2>" in page and "999 USD" not in page
    for field in [*MONEY_FIELDS, "status"]:
        assert f'name="{field}"' not in page
    assert client.get(reverse("admin:payments_payment_change", args=[jpy.pk])).status_code == 200
    assert client.get(reverse("admin:payments_payment_change", args=[kwd.pk])).status_code == 200


def test_payments_cannot_be_deleted_even_by_a_superuser(as_staff):
    client = as_staff("root", superuser=True)
    payment = PaymentFactory()
    assert (
        client.post(reverse("admin:payments_payment_delete", args=[payment.pk]), {"post": "yes"}).status_code
        == 403
    )
    listing = client.get(reverse("admin:payments_payment_changelist")).content.decode()
    assert "delete_selected" not in listing
    response = client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "delete_selected", "_selected_action": [payment.pk], "post": "yes"},
    )
    assert response.status_code == 302  # back to the list: Django ignores an action it does not offer
    assert Payment.objects.filter(pk=payment.pk).exists()


def test_marking_failed_in_admin_writes_what_the_api_status_call_writes(as_staff, staff_client):
    via_api, via_admin = PaymentFactory(), PaymentFactory()
    OutboxEvent.objects.all().delete()
    LogEntry.objects.all().delete()
    response = staff_client.post(
        f"/api/v1/payments/{via_api.pk}/status/",
        {"status": "failed", "failure_reason": "card lost"},
        format="json",
    )
    assert response.status_code == 200
    client = as_staff("fiona", "finance")
    response = client.post(
        reverse("admin:payments_payment_move", args=[via_admin.pk, "failed"]), {"reason": "card lost"}
    )
    assert response.status_code == 302
    via_admin.refresh_from_db()
    assert (via_admin.status, via_admin.failure_reason) == ("failed", "card lost")
    assert _events(via_admin.pk) == _events(via_api.pk)
    assert [e["changes"] for e in _payment_audit(via_admin)] == [
        e["changes"] for e in _payment_audit(via_api)
    ]
    entry = LogEntry.objects.get(object_pk=str(via_admin.pk))
    assert (entry.actor.username, entry.additional_data["reason"]) == ("fiona", "card lost")


def test_the_state_machine_holds_in_admin(as_staff):
    client = as_staff("fiona", "finance")
    completed = PaymentFactory(status=Payment.Status.COMPLETED)
    response = client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "cancel_pending", "_selected_action": [completed.pk], "reason": "duplicate"},
        follow=True,
    )
    assert "A completed payment cannot become cancelled." in response.content.decode()
    completed.refresh_from_db()
    assert completed.status == Payment.Status.COMPLETED
    pending = PaymentFactory()
    client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "cancel_pending", "_selected_action": [pending.pk], "reason": "duplicate order"},
    )
    pending.refresh_from_db()
    assert pending.status == Payment.Status.CANCELLED
    assert [t for t, _ in _events(pending.pk)] == ["payment.status.updated"]


def test_a_move_needs_a_reason(as_staff):
    client = as_staff("fiona", "finance")
    pending = PaymentFactory()
    client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "mark_failed", "_selected_action": [pending.pk], "reason": ""},
    )
    pending.refresh_from_db()
    assert pending.status == Payment.Status.PENDING
    page = client.post(reverse("admin:payments_payment_move", args=[pending.pk, "failed"]), {"reason": ""})
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    pending.refresh_from_db()
    assert pending.status == Payment.Status.PENDING


@pytest.fixture
def bank_transfer_with_access():
    """A completed bank transfer that granted a plan's two features."""
    plan = PlanFactory(id="family_yearly", billing_cycle="yearly", price_cents=4999, max_users=1)
    plan.features.set([FeatureFactory(code="calendar"), FeatureFactory(code="chat")])
    payment = PaymentFactory(
        amount=4999, payment_method=Payment.Method.BANK_TRANSFER, status=Payment.Status.COMPLETED
    )
    entitlements_grant_plan(user_id=payment.customer_id, plan=plan, payment_id=payment.pk)
    return payment


def _refund(client, payment, amount: str, reason: str, *, confirm: bool):
    url = reverse("admin:payments_payment_refund", args=[payment.pk])
    data = {"amount": amount, "reason": reason, **({"confirmed": "on"} if confirm else {})}
    return client.post(url, data)


def test_a_bank_transfer_is_refunded_in_parts_and_then_access_ends(as_staff, bank_transfer_with_access):
    payment = bank_transfer_with_access
    client = as_staff("fiona", "finance")
    change_page = client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert "Record a refund made outside Stripe" in change_page

    review = _refund(client, payment, "20.00", "half back, goodwill", confirm=False).content.decode()
    assert "Refund 20.00 USD?" in review and "no access is revoked" in review
    assert "<tr><th>Amount</th><td>49.99 USD</td></tr>" in review  # the payment's, beside the refund's
    assert not Refund.objects.exists()  # reviewing changes nothing
    assert _refund(client, payment, "20.00", "half back, goodwill", confirm=True).status_code == 302
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("completed", 2000)
    assert Entitlement.objects.filter(payment_id=payment.pk, status="active").count() == 2

    review = _refund(client, payment, "29.99", "the rest", confirm=False).content.decode()
    assert "the payment becomes <strong>refunded</strong>" in review
    assert "customer_123: calendar" in review and "customer_123: chat" in review
    too_much = _refund(client, payment, "30.00", "the rest", confirm=True).content.decode()
    assert "Between 0 and 29.99 USD." in too_much
    assert _refund(client, payment, "29.99", "the rest", confirm=True).status_code == 302
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 4999)
    assert set(Entitlement.objects.filter(payment_id=payment.pk).values_list("status", flat=True)) == {
        "cancelled"
    }
    refunds = list(
        Refund.objects.filter(payment=payment)
        .order_by("created_at")
        .values_list("amount", "requested_by", "status")
    )
    assert refunds == [(2000, "staff:fiona", "succeeded"), (2999, "staff:fiona", "succeeded")]
    assert "payment.refunded" in [t for t, _ in _events(payment.pk)]
    reasons = {e["reason"] for e in _payment_audit(payment)}
    assert {"half back, goodwill", "the rest"} <= reasons


def test_more_decimals_than_the_currency_has_is_refused(as_staff, bank_transfer_with_access):
    client = as_staff("fiona", "finance")
    page = _refund(client, bank_transfer_with_access, "1.005", "x", confirm=True).content.decode()
    assert "USD amounts have at most 2 decimal places." in page
    assert not Refund.objects.exists()


def test_a_stripe_refund_in_admin_writes_what_the_api_refund_writes(as_staff, staff_client, localstripe):
    via_api, via_admin = charged_payment(localstripe), charged_payment(localstripe)
    OutboxEvent.objects.all().delete()
    LogEntry.objects.all().delete()
    response = staff_client.post(
        f"/api/v1/payments/{via_api.pk}/refund/",
        {"amount": 500, "reason": "late delivery"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 200, response.content
    client = as_staff("fiona", "finance")
    assert _refund(client, via_admin, "5.00", "late delivery", confirm=True).status_code == 302
    via_admin.refresh_from_db()
    assert via_admin.refunded_amount == 500
    assert _events(via_admin.pk) == _events(via_api.pk)

    def audit_shape(payment):
        return sorted(
            (e.content_type.model, sorted(e.changes_dict), (e.additional_data or {}).get("reason"))
            for e in LogEntry.objects.filter(
                object_pk__in=[str(payment.pk), *map(str, payment.refunds.values_list("pk", flat=True))]
            )
        )

    assert audit_shape(via_admin) == audit_shape(via_api)
    refund = via_admin.refunds.get()
    assert (refund.requested_by, refund.reason, refund.status) == (
        "staff:fiona",
        "late delivery",
        "succeeded",
    )
    assert refund.stripe_refund_id.startswith("re_")


@pytest.mark.parametrize("groups", [(), ("support",)])
def test_staff_without_the_permission_get_403_and_no_button(as_staff, bank_transfer_with_access, groups):
    payment = bank_transfer_with_access
    client = as_staff("sam", *groups)
    if groups:
        page = client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
        assert "refund made outside Stripe" not in page
        listing = client.get(reverse("admin:payments_payment_changelist")).content.decode()
        assert 'value="refund"' not in listing and 'value="mark_failed"' not in listing
    assert client.get(reverse("admin:payments_payment_refund", args=[payment.pk])).status_code == 403
    assert _refund(client, payment, "1.00", "x", confirm=True).status_code == 403
    pending = PaymentFactory()
    assert (
        client.post(
            reverse("admin:payments_payment_move", args=[pending.pk, "failed"]), {"reason": "x"}
        ).status_code
        == 403
    )
    assert not Refund.objects.exists()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_the_groups_exist_with_their_permissions():
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    finance = set(Group.objects.get(name="finance").permissions.values_list("codename", flat=True))
    assert {
        "view_payment",
        "view_plan",
        "view_entitlement",
        "add_entitlement",
        "change_entitlement",
        "change_stripeevent",
    } <= support
    assert not {"refund_payment", "change_payment", "change_plan", "change_pricingzone"} & support
    assert support < finance
    assert {"refund_payment", "change_payment", "change_plan", "change_pricingzone"} <= finance
    assert not {p for p in finance if p.startswith("delete_")}


def test_subscriptions_are_listed_and_shown_but_never_added_changed_or_deleted(as_staff):
    subscription = Subscription.objects.create(
        user_id="buyer_1",
        plan=PlanFactory(id="premium_monthly", name="Premium monthly"),
        status=Subscription.Status.ACTIVE,
        amount=999,
        currency="USD",
        stripe_subscription_id="sub_admin_1",
        current_period_end=timezone.now() + timedelta(days=30),
    )
    client = as_staff("sue", "support")
    listing = client.get(reverse("admin:payments_subscription_changelist")).content.decode()
    assert [text for text in ("buyer_1", "Premium monthly", "active", "9.99") if text not in listing] == []
    change = reverse("admin:payments_subscription_change", args=[subscription.pk])
    page = client.get(change)
    assert page.status_code == 200
    assert 'name="amount"' not in page.content.decode() and 'name="status"' not in page.content.decode()

    superuser = as_staff("root", superuser=True)
    client.post(change, {"status": "canceled", "amount": 1, "currency": "EUR"})
    assert superuser.get(reverse("admin:payments_subscription_add")).status_code == 403
    delete = reverse("admin:payments_subscription_delete", args=[subscription.pk])
    assert superuser.post(delete, {"post": "yes"}).status_code == 403
    subscription.refresh_from_db()
    assert (subscription.status, subscription.amount, subscription.currency) == ("active", 999, "USD")


def _stripe_subscription_id(localstripe) -> str:
    """A subscription localstripe made and charged through a checkout."""
    session = stripe_gateway._client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 999, "product_data": {"name": "P"},
                               "recurring": {"interval": "month"}},
            }],
            "success_url": "https://app.example/ok",
            "cancel_url": "https://app.example/cancel",
        }
    )  # fmt: skip
    localstripe.complete_checkout_session(session.id)
    return stripe_gateway.checkout_session_retrieve(session.id)["subscription"]


@pytest.fixture
def duplicate_left_to_staff(localstripe) -> tuple[Subscription, Payment]:
    """A live duplicate 0005 left to staff, with a completed payment of 9.99."""
    plan = PlanFactory(id="premium_monthly", name="Premium monthly")
    kept = SubscriptionFactory(user_id="buyer_2", plan=plan, stripe_subscription_id="sub_kept")
    stripe_id = _stripe_subscription_id(localstripe)
    duplicate = SubscriptionFactory(
        user_id="buyer_2",
        plan=plan,
        status=Subscription.Status.ACTIVE,
        stripe_subscription_id=stripe_id,
        checkout_session=CheckoutSessionFactory(
            user_id="buyer_2", plan=plan, stripe_subscription_id=stripe_id
        ),
        duplicate_of=kept,
        settled_by_staff=True,
    )
    payment = charged_payment(
        localstripe, amount=999, metadata={"stripe_subscription_id": duplicate.stripe_subscription_id}
    )
    return duplicate, payment


def _settle(client, subscription):
    return client.post(
        reverse("admin:payments_subscription_changelist"),
        {"action": "settle_duplicates", "_selected_action": [subscription.pk]},
        follow=True,
    )


def test_a_duplicate_left_to_staff_is_listed_and_settled_by_finance(as_staff, duplicate_left_to_staff):
    duplicate, payment = duplicate_left_to_staff
    client = as_staff("fiona", "finance")
    listing = client.get(reverse("admin:payments_subscription_changelist") + "?settled_by_staff__exact=1")
    assert [s.pk for s in listing.context["cl"].result_list] == [duplicate.pk]
    assert 'value="settle_duplicates"' in listing.content.decode()

    response = _settle(client, duplicate)

    assert [m.message for m in response.context["messages"]] == [
        "1 duplicate subscription(s) canceled at Stripe and refunded in full."
    ]
    duplicate.refresh_from_db()
    assert duplicate.status == Subscription.Status.CANCELED
    assert stripe_gateway.subscription_retrieve(duplicate.stripe_subscription_id)["status"] == "canceled"
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == (Payment.Status.REFUNDED, 999)
    refund = payment.refunds.get()
    assert (refund.requested_by, refund.status) == ("staff:fiona", "succeeded")


def test_support_cannot_settle_a_duplicate(as_staff, duplicate_left_to_staff):
    duplicate, _ = duplicate_left_to_staff
    client = as_staff("sue", "support")
    listing = client.get(reverse("admin:payments_subscription_changelist")).content.decode()
    assert 'value="settle_duplicates"' not in listing

    _settle(client, duplicate)

    duplicate.refresh_from_db()
    assert duplicate.status == Subscription.Status.ACTIVE
    assert stripe_gateway.subscription_retrieve(duplicate.stripe_subscription_id)["status"] == "active"
    assert not Refund.objects.exists()


@pytest.mark.parametrize("page", ["payments_payment_refund", "payments_payment_move"])
def test_an_unknown_payment_s_page_says_so_in_admin_not_a_plain_404(as_staff, page):
    missing = "3f1c2a4e-0b7d-4c9e-8f00-000000000000"
    args = [missing] if page == "payments_payment_refund" else [missing, "failed"]
    response = as_staff("root", superuser=True).get(reverse(f"admin:{page}", args=args), follow=True)
    assert response.redirect_chain == [(reverse("admin:index"), 302)]
    assert [m.message for m in response.context["messages"]] == [
        f"payment with ID \u201c{missing}\u201d doesn\u2019t exist. Perhaps it was deleted?"
    ]


def test_the_refund_page_s_breadcrumb_names_the_payment_as_its_own_page_does(
    as_staff, bank_transfer_with_access
):
    payment = bank_transfer_with_access
    client = as_staff("fiona", "finance")
    page = client.get(reverse("admin:payments_payment_refund", args=[payment.pk])).content.decode()
    crumbs = page.split('<div class="breadcrumbs">', 1)[1].split("</div>", 1)[0]
    change = reverse("admin:payments_payment_change", args=[payment.pk])
    assert f'<a href="{change}">49.99 USD (completed)</a>' in crumbs
    assert str(payment.pk) not in crumbs.replace(change, "")
    assert crumbs.rstrip().endswith("&rsaquo; Record a refund")


def test_a_refund_reads_as_money_in_the_payment_s_currency(bank_transfer_with_access):
    refund = Refund.objects.create(payment=bank_transfer_with_access, amount=2000, requested_by="staff:x")
    assert str(refund) == "refund 20.00 USD (pending)"


def test_a_duplicate_s_page_says_what_duplicate_of_names(as_staff, duplicate_left_to_staff):
    duplicate, _ = duplicate_left_to_staff
    client = as_staff("sue", "support")
    page = client.get(reverse("admin:payments_subscription_change", args=[duplicate.pk])).content.decode()
    assert "Set only on a duplicate: the buyer's live subscription this one repeats" in page
