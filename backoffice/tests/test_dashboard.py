"""The admin index: the dashboard's figures are the database's, in a handful of queries; the
sections come in the product's order with the Stripe mirror pruned and read-only."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from backoffice.dashboard import dashboard
from entitlements.tests.factories import EntitlementFactory
from jia_payments.core.outbox.events import record_event
from payments.models import Payment, StripeEvent
from payments.tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


def _payment(days_ago: int, status: str, amount: int = 999, refunded: int = 0, currency: str = "USD"):
    payment = PaymentFactory(status=status, amount=amount, refunded_amount=refunded, currency=currency)
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return payment


@pytest.fixture
def business():
    _payment(0, "completed")
    _payment(0, "failed")
    _payment(1, "refunded", amount=999, refunded=999)
    _payment(1, "completed", amount=2000, refunded=500)
    _payment(3, "pending")
    _payment(2, "completed", amount=500, currency="JPY")
    _payment(45, "completed", amount=100_000)  # before the window
    EntitlementFactory.create_batch(2)
    StripeEvent.objects.create(
        id="evt_failed",
        type="invoice.paid",
        stripe_created_at=timezone.now(),
        payload={},
        source="webhook",
        status="failed",
    )
    record_event(type="payment.created", aggregate_id="p1", subject="payments/p1", data={})


def test_the_dashboard_counts_what_the_database_holds(business, admin_user, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        board = dashboard(user=admin_user)
    assert board.payments_total == 6
    assert (board.succeeded, board.failed) == (4, 1)
    assert board.success_rate == "80.0%"
    assert board.revenue_total == {"JPY": "500 JPY", "USD": "24.99 USD"}
    assert board.payments_per_day[-1] == 2 and board.succeeded_per_day[-1] == 1
    assert board.revenue_per_day["USD"][-2] == 15.0 and board.revenue_per_day["USD"][-1] == 9.99
    assert sum(plan["rows"] for plan in board.entitlements_per_plan) == 2
    assert board.webhooks == {"failed": 1, "pending": 0}
    assert (board.outbox["pending"], board.outbox["failing"]) == (1, 0)


def test_the_index_shows_the_dashboard_and_its_links_work(admin_client, admin_user, business):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="payments-chart"' in html and "backoffice/vendor/chart.umd.min.js" in html
    assert '<td id="figure-success-rate">80.0%</td>' in html
    board = dashboard(user=admin_user)
    for link in board.links.values():
        assert admin_client.get(link).status_code == 200, link
    failed = admin_client.get(board.links["failed_webhooks"]).content.decode()
    assert "evt_failed" in failed


FIGURES = {
    "payments": ['id="figure-payments"', 'id="figure-revenue"', 'id="payments-chart"'],
    "entitlements": ['id="entitlements-per-plan"'],
    "webhooks": ['id="figure-webhooks-failed"'],
    "outbox": ['id="figure-outbox-pending"'],
}


def _figures_shown(html: str) -> set[str]:
    return {section for section, marks in FIGURES.items() if any(mark in html for mark in marks)}


def test_staff_in_no_group_see_no_figure(as_staff, business):
    html = as_staff("nobody").get(reverse("admin:index")).content.decode()
    assert _figures_shown(html) == set()
    assert 'id="dashboard"' not in html and "24.99 USD" not in html


def test_each_section_needs_the_view_permission_of_what_it_counts(as_staff, business):
    client = as_staff("eve")
    user = get_user_model().objects.get(username="eve")
    user.user_permissions.add(Permission.objects.get(codename="view_entitlement"))
    html = client.get(reverse("admin:index")).content.decode()
    assert _figures_shown(html) == {"entitlements"}
    assert "24.99 USD" not in html
    user.user_permissions.add(Permission.objects.get(codename="view_payment"))
    html = client.get(reverse("admin:index")).content.decode()
    assert _figures_shown(html) == {"entitlements", "payments"}
    assert '<td id="figure-revenue">500 JPY, 24.99 USD</td>' in html


def test_the_support_group_sees_every_figure(as_staff, business):
    html = as_staff("sue", "support").get(reverse("admin:index")).content.decode()
    assert _figures_shown(html) == set(FIGURES)


def test_a_section_not_shown_is_not_queried(business, django_assert_num_queries):
    nobody = get_user_model().objects.create_user("nobody", is_staff=True)
    with django_assert_num_queries(2):  # the user's permissions (its groups', its own)
        board = dashboard(user=nobody)
    assert board.sections == frozenset() and board.payments_total == 0 and board.links == {}


def test_sections_come_in_the_products_order_with_the_stripe_mirror_pruned(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    positions = [
        html.index(f'class="app-{label} module')
        for label in ("pricing", "entitlements", "payments", "djstripe", "core")
    ]
    assert positions == sorted(positions)
    stripe = sorted(m.__name__ for m in admin.site._registry if m._meta.app_label == "djstripe")
    assert stripe == ["Charge", "Customer", "Event", "Invoice", "Refund", "Subscription"]
    assert html.count('class="app-djstripe module') == 1 and "Stripe (read-only mirror)" in html
    for model in admin.site._registry:
        if model._meta.app_label == "djstripe":
            model_admin = admin.site._registry[model]
            assert not model_admin.has_change_permission(None) and not model_admin.has_delete_permission(None)
            url = reverse(f"admin:djstripe_{model._meta.model_name}_changelist")
            assert admin_client.get(url).status_code == 200, url
