"""Every admin page renders for staff and is refused to anonymous visitors."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from entitlements.tests.factories import EntitlementFactory, FamilyMemberFactory
from jia_payments.core.models import IdempotencyKey
from jia_payments.core.outbox.events import record_event
from payments.models import Payment, Subscription
from payments.tests.factories import CheckoutSessionFactory, PaymentFactory, StripeEventFactory
from pricing.models import Plan

pytestmark = pytest.mark.django_db

OUR_APPS = {"core", "pricing", "entitlements", "payments"}


@pytest.fixture
def populated():
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    payment = PaymentFactory()
    EntitlementFactory()
    FamilyMemberFactory()
    CheckoutSessionFactory(user_id="user_1", plan=Plan.objects.get(pk="premium_monthly"), payment=payment)
    record_event(type="payment.created", aggregate_id=payment.pk, subject=f"payments/{payment.pk}", data={})
    IdempotencyKey.objects.create(caller="u", key="k", method="POST", path="/x", request_fingerprint="0" * 64)
    StripeEventFactory(event__id="evt_1", event__type="invoice.paid")
    Subscription.objects.create(
        user_id="user_1",
        plan=Plan.objects.get(pk="premium_monthly"),
        status=Subscription.Status.ACTIVE,
        amount=999,
        currency="USD",
        stripe_subscription_id="sub_1",
    )


def _our_models():
    return [model for model in admin.site._registry if model._meta.app_label in OUR_APPS]


def _urls(model):
    meta = model._meta
    prefix = f"admin:{meta.app_label}_{meta.model_name}"
    urls = [reverse(f"{prefix}_changelist")]
    instance = model.objects.first()
    assert instance is not None, f"no {meta.label} to open"
    urls.append(reverse(f"{prefix}_change", args=[instance.pk]))
    if admin.site._registry[model].has_add_permission(_FakeRequest()):
        urls.append(reverse(f"{prefix}_add"))
    return urls


class _FakeRequest:
    class user:
        is_active = is_staff = is_superuser = True

        @staticmethod
        def has_perm(*args):
            return True


def test_every_admin_page_renders_for_staff(admin_client, populated):
    models = _our_models()
    assert {m._meta.label for m in models} >= {
        "pricing.Feature",
        "pricing.Plan",
        "pricing.PricingZone",
        "entitlements.Entitlement",
        "entitlements.Family",
        "payments.Payment",
        "payments.CheckoutSession",
        "payments.Subscription",
        "core.OutboxEvent",
    }
    for model in models:
        for url in _urls(model):
            response = admin_client.get(url)
            assert response.status_code == 200, url
            search = admin_client.get(url, {"q": "IN"}) if url.endswith("/") and "change" not in url else None
            assert search is None or search.status_code == 200


def test_anonymous_visitors_are_sent_to_login(client, populated):
    for model in _our_models():
        for url in _urls(model):
            response = client.get(url)
            assert response.status_code == 302, url
            assert response.url.startswith(reverse("admin:login"))


def test_plan_page_shows_its_price_in_each_zone(admin_client, populated):
    response = admin_client.get(reverse("admin:pricing_plan_change", args=["premium_monthly"]))
    html = response.content.decode()
    for line in [
        "Zone A (Premium, x1.00): 9.99 USD",
        "Zone B (Mid-High, x0.70): 6.99 USD",
        "Zone C (Mid-Low, x0.40): 4.00 USD",
        "Zone D (Low-Income, x0.20): 2.00 USD",
    ]:
        assert line in html


def test_plan_page_shows_a_zero_decimal_currency_in_its_own_units(admin_client):
    Plan.objects.create(
        id="premium_jpy", name="Premium (JPY)", billing_cycle="monthly", price_cents=1500, currency="JPY"
    )
    html = admin_client.get(reverse("admin:pricing_plan_change", args=["premium_jpy"])).content.decode()
    assert "Zone A (Premium, x1.00): 1500 JPY" in html
    assert "Zone C (Mid-Low, x0.40): 600 JPY" in html


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1999, "USD", "19.99"),
        (5, "EUR", "0.05"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (0, "usd", "0.00"),
    ],
)
def test_amounts_are_shown_in_the_currencys_major_units(amount, currency, shown):
    from pricing.money import format_major_units

    assert format_major_units(amount, currency) == shown


def test_admin_refuses_an_illegal_payment_status(admin_client):
    payment = PaymentFactory(status=Payment.Status.FAILED)
    url = reverse("admin:payments_payment_change", args=[payment.pk])
    form = {
        "amount": payment.amount,
        "currency": "USD",
        "status": "completed",
        "payment_method": "credit_card",
        "customer_id": payment.customer_id,
        "order_id": payment.order_id,
        "description": "",
        "external_payment_id": "",
        "failure_reason": "",
        "metadata": "{}",
    }
    response = admin_client.post(url, form)
    # The payment form is read-only: a status moves only through the actions that call the services.
    assert response.status_code == 403
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
