"""Staff journeys through the admin in headless Chromium against a live server: each page is
screenshotted to var/screenshots/. The database is read before and after each browser block."""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from backoffice.dashboard import dashboard
from entitlements.models import Entitlement, Family
from entitlements.services import entitlements_grant_plan
from payments.models import Payment
from payments.tests.factories import PaymentFactory
from pricing.models import Plan, PricingZone
from testsupport.browser import chromium_page, log_in, screenshot

PASSWORD = "correct-horse-battery-staple"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def staff(settings):
    # The live server speaks plain HTTP: cookies must not be Secure-only for the browser to send them.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    get_user_model().objects.create_user(
        "zoe", email="zoe@example.com", password=PASSWORD, is_staff=True, is_superuser=True
    )
    return "zoe"


def _zone_price_text(page) -> str:
    return page.inner_text("#zone-prices")


def test_a_new_plans_zone_prices_follow_the_price_being_typed(live_server, staff):
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(f"{live_server.url}/admin/pricing/plan/add/")
        page.fill("#id_id", "trio_monthly")
        page.fill("#id_name", "Trio (monthly)")
        page.select_option("#id_billing_cycle", "monthly")
        page.fill("#id_currency", "USD")
        page.fill("#id_price_cents", "1000")
        page.wait_for_function("document.querySelector('#zone-prices').innerText.includes('10.00 USD')")
        assert "Zone C (Mid-Low, x0.40): 4.00 USD" in _zone_price_text(page)
        page.fill("#id_price_cents", "1500")
        page.wait_for_function("document.querySelector('#zone-prices').innerText.includes('15.00 USD')")
        typed = _zone_price_text(page)
        page.fill("#price-preview-country", "IN")
        page.wait_for_function("document.querySelector('#country-price').innerText.startsWith('IN:')")
        country = page.inner_text("#country-price")
        for code in ("family_calendar", "shared_lists", "photo_vault"):
            page.dblclick(f"#id_features_from option[value={code}]")  # moves it to "chosen"
        page.fill("#id_audit_reason", "new three-feature plan")
        screenshot(page, "01-plan-typing-prices")
        page.click("input[name=_continue]")
        page.wait_for_selector("ul.messagelist li.success")
        screenshot(page, "02-plan-saved")
    assert "Zone A (Premium, x1.00): 15.00 USD" in typed
    assert "Zone C (Mid-Low, x0.40): 6.00 USD" in typed
    assert "Zone D (Low-Income, x0.20): 3.00 USD" in typed
    assert country == "IN: zone C (Mid-Low, x0.40): 6.00 USD"
    plan = Plan.objects.get(pk="trio_monthly")
    assert plan.price_cents == 1500
    assert sorted(plan.features.values_list("code", flat=True)) == [
        "family_calendar",
        "photo_vault",
        "shared_lists",
    ]


def test_zone_c_multiplier_changes_the_plan_page_and_the_api_price(live_server, staff):
    in_zone_c = PricingZone.objects.filter(zone="C").count()
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(f"{live_server.url}/admin/pricing/pricingzone/?zone__exact=C")
        page.check("#action-toggle")
        page.select_option("select[name=action]", "change_zone_multiplier")
        page.click("button[name=index]")
        page.wait_for_selector("#id_pricing_multiplier")
        page.fill("#id_pricing_multiplier", "0.50")
        page.fill("#id_reason", "FY2027 price review")
        page.click("input[type=submit]")
        page.wait_for_selector("#zone-multiplier-preview")
        preview = page.inner_text("#zone-multiplier-preview")
        screenshot(page, "03-zone-multiplier-preview")
        page.click("input[name=apply]")
        page.wait_for_selector("ul.messagelist li.success")
        page.goto(f"{live_server.url}/admin/pricing/plan/premium_monthly/change/")
        plan_prices = _zone_price_text(page)
        screenshot(page, "04-plan-page-after-zone-change")
    assert f"{in_zone_c} of the zone's {in_zone_c} countries change" in preview
    assert "Premium (monthly)\t4.00 USD\t5.00 USD" in preview
    assert "Zone C (Mid-Low, x0.50): 5.00 USD" in plan_prices
    api = requests.get(
        f"{live_server.url}/api/v1/prices/",
        params={"country": "IN", "plan_id": "premium_monthly"},
        timeout=30,
    )
    body = api.json()
    [price] = body if isinstance(body, list) else body["results"]
    assert (price["zone"], price["multiplier"], price["price_cents"]) == ("C", "0.50", 500)


def test_importing_the_fy2026_file_shows_its_preview(live_server, staff):
    PricingZone.objects.filter(iso_code="JO").update(
        zone="B", zone_name="Mid-High", pricing_multiplier=Decimal("0.70")
    )
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(f"{live_server.url}/admin/pricing/pricingzone/")
        page.click("a.zone-import")
        page.select_option("#id_bundled", "world_bank_income_groups_fy2026.csv")
        page.fill("#id_reason", "FY2026 classification")
        page.click("input[type=submit]")
        page.wait_for_selector("#import-preview")
        preview = page.inner_text("#import-preview")
        screenshot(page, "05-import-preview")
        page.click("input[name=apply]")
        page.wait_for_selector("ul.messagelist li.success")
    assert "JO Jordan" in preview and "B \u2192 C" in preview
    assert "Premium (monthly): 6.99 USD \u2192 4.00 USD" in preview
    assert PricingZone.objects.get(iso_code="JO").zone == "C"


def test_a_granted_family_plan_shows_on_the_why_page_for_owner_and_member(live_server, staff):
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(f"{live_server.url}/admin/entitlements/entitlement/")
        page.click("a.grant-plan")
        page.fill("#id_user_id", "owner_ana")
        page.select_option("#id_plan", "family_monthly")
        page.fill("#id_reason", "partner promotion")
        screenshot(page, "06-grant-family-plan")
        page.click("#grant-plan-form input[type=submit]")
        page.wait_for_selector("ul.messagelist li.success")
        granted = page.inner_text("ul.messagelist")
        page.goto(f"{live_server.url}/admin/entitlements/family/")
        page.click("#result_list tbody tr th a")
        page.fill("#id_members-1-user_id", "kid_ben")
        page.fill("#id_audit_reason", "owner asked")
        page.click("input[name=_continue]")
        page.wait_for_selector("ul.messagelist li.success")
        answers = {}
        for user_id in ("owner_ana", "kid_ben"):
            page.goto(
                f"{live_server.url}/admin/entitlements/why/?user_id={user_id}&feature_code=family_calendar"
            )
            page.wait_for_selector("#why-answer")
            answers[user_id] = (page.inner_text("#why-has-access"), page.inner_text("#why-source"))
            screenshot(page, f"07-why-{user_id}")
    assert "Granted Family (monthly) to owner_ana" in granted
    family = Family.objects.get(owner_user_id="owner_ana")
    for user_id in ("owner_ana", "kid_ben"):
        has_access, source = answers[user_id]
        assert has_access == "true"
        assert f"family {family.pk}" in source
    rows = Entitlement.objects.filter(family=family)
    assert rows.count() == Plan.objects.get(pk="family_monthly").features.count()


def test_refunding_part_then_the_rest_revokes_the_access(live_server, staff):
    plan = Plan.objects.get(pk="premium_monthly")
    payment = PaymentFactory(
        amount=999,
        customer_id="cara",
        payment_method=Payment.Method.BANK_TRANSFER,
        status=Payment.Status.COMPLETED,
    )
    entitlements_grant_plan(user_id="cara", plan=plan, payment_id=payment.pk)
    url = f"{live_server.url}/admin/payments/payment/{payment.pk}/change/"
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(url)
        screenshot(page, "08-payment-page")
        page.click("a.payment-action:has-text('Record a refund made outside Stripe')")
        page.fill("#id_amount", "4.00")
        page.fill("#id_reason", "service outage, partial credit")
        page.click("input[type=submit]")
        page.wait_for_selector("#refund-confirmation")
        partial = page.inner_text("#refund-confirmation")
        screenshot(page, "09-refund-partial-confirmation")
        page.click("input[name=confirm]")
        page.wait_for_selector("ul.messagelist li.success")
        page.click("a.payment-action:has-text('Record a refund made outside Stripe')")
        page.fill("#id_reason", "customer left")
        page.click("input[type=submit]")
        page.wait_for_selector("#refund-confirmation")
        rest = page.inner_text("#refund-confirmation")
        screenshot(page, "10-refund-rest-confirmation")
        page.click("input[name=confirm]")
        page.wait_for_selector("ul.messagelist li.success")
        page.goto(f"{live_server.url}/admin/entitlements/why/?user_id=cara&feature_code=family_calendar")
        page.wait_for_selector("#why-answer")
        after = page.inner_text("#why-reason")
        screenshot(page, "11-why-after-refund")
    assert "Refund 4.00 USD?" in partial and "no access is revoked" in partial
    assert "Refund 5.99 USD?" in rest and "cara: family_calendar" in rest
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_amount) == ("refunded", 999)
    assert not Entitlement.objects.filter(payment_id=payment.pk, status="active").exists()
    assert after == "revoked"


# How many lines each figure of the dashboard's table takes (the rows of its text's boxes).
LINES_PER_FIGURE = """(() => Object.fromEntries(
  [...document.querySelectorAll('.dashboard-figures tr')].map(row => {
  const range = document.createRange();
  range.selectNodeContents(row.querySelector('td'));
  const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
  return [row.querySelector('th').innerText, tops.size];
  })))()"""


def test_the_dashboard_shows_the_chart_and_the_databases_figures(live_server, staff):
    for days_ago, status in [(0, "completed"), (0, "failed"), (2, "completed"), (5, "pending")]:
        payment = PaymentFactory(status=status)
        Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    board = dashboard(user=get_user_model().objects.get(username=staff))
    with chromium_page() as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.wait_for_function("document.getElementById('payments-chart').chart !== undefined")
        drawn = page.evaluate(
            "(() => { const c = document.getElementById('payments-chart').chart;"
            " return c.data.datasets.map(d => d.data.reduce((a, b) => a + b, 0)); })()"
        )
        figures = {
            name: page.inner_text(f"#figure-{name}")
            for name in (
                "payments",
                "succeeded",
                "failed",
                "success-rate",
                "webhooks-failed",
                "outbox-pending",
            )
        }
        lines_per_figure = page.evaluate(LINES_PER_FIGURE)
        screenshot(page, "12-dashboard")
    assert figures["payments"] == str(board.payments_total) == "4"
    assert figures["succeeded"] == str(board.succeeded) == "2"
    assert figures["failed"] == "1"
    assert figures["success-rate"] == board.success_rate == "66.7%"
    assert figures["webhooks-failed"] == str(board.webhooks["failed"])
    assert figures["outbox-pending"] == str(board.outbox["pending"])
    assert lines_per_figure == {name: 1 for name in lines_per_figure}, lines_per_figure  # "(0 waiting)" too
    assert drawn[:2] == [4, 2]
    assert drawn[2] == pytest.approx(2 * 19.99)


def test_a_page_staff_groups_do_not_allow_is_admins_403_with_a_way_back(live_server, staff):
    get_user_model().objects.create_user("vic", password=PASSWORD, is_staff=True)  # in no group
    with chromium_page() as page:
        log_in(page, live_server.url, "vic", PASSWORD)
        answer = page.goto(f"{live_server.url}/admin/payments/stripeevent/")
        status, text = answer.status, page.inner_text("#permission-denied")
        screenshot(page, "13-permission-denied")
        page.click("#admin-home")
        page.wait_for_selector("#content-main")
        home = page.url
        dashboard_shown = page.query_selector("#dashboard") is not None  # vic may view no figure
    assert status == 403 and not dashboard_shown
    assert "Your admin groups do not allow this page" in text
    assert home == f"{live_server.url}/admin/"


# How far the results table reaches past its box (0: every column is seen without scrolling).
RESULTS_OVERFLOW = """(() => {
  const box = document.querySelector('.results');
  return box.scrollWidth - box.clientWidth;
})()"""


def test_the_subscription_list_fits_a_1280_px_screen_beside_the_menu_and_filters(live_server, staff):
    from payments.tests.factories import SubscriptionFactory

    family, ends = Plan.objects.get(pk="family_monthly"), timezone.now() + timedelta(days=30)
    buyer = {"user_id": "spiff_id_test_user_123", "plan": family, "current_period_end": ends}
    kept = SubscriptionFactory(**buyer, status="past_due", amount=12999)
    SubscriptionFactory(**buyer, status="active", duplicate_of=kept, settled_by_staff=True)
    SubscriptionFactory(user_id="buyer_long_id_77", status="incomplete_expired", current_period_end=ends)
    with chromium_page(viewport={"width": 1280, "height": 800}) as page:
        log_in(page, live_server.url, staff, PASSWORD)
        page.goto(f"{live_server.url}/admin/payments/subscription/")
        overflow = page.evaluate(RESULTS_OVERFLOW)
        headers = page.eval_on_selector_all("#result_list thead th", "ths => ths.map(th => th.innerText)")
        rows = page.inner_text("#result_list tbody")
        screenshot(page, "12-subscriptions-1280")
    assert overflow <= 0
    assert [h.strip() for h in headers] == ["", "USER ID", "PLAN", "STATUS", "PER PERIOD", "PERIOD ENDS"]
    assert "Active, left to staff" in rows and "129.99 USD" in rows
