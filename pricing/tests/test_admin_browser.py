"""Django admin in a real browser: headless Chromium (Debian's `chromium`, which `make test` installs)
driven by Playwright against a live server. A staff user logs in, changes a pricing zone with a
reason, and reads the change and its audit history next to the zone."""

import os
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from pricing.models import PricingZone
from pricing.tests.factories import PricingZoneFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct-horse-battery-staple"
TIMEOUT_MS = 30_000  # per action: a bound for a busy 2-core machine, not a speed assertion

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chromium(settings):
    """`with chromium() as page:` a fresh Chromium page; on leaving, the browser and its processes
    are gone. Playwright's sync API runs an event loop in this thread while the block lasts, so the
    test touches the database before and after the block, not inside it."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    # The live server speaks plain HTTP: cookies must not be Secure-only for the browser to send them.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False

    @contextmanager
    def page():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                new_page = browser.new_page()
                new_page.set_default_timeout(TIMEOUT_MS)
                yield new_page
            finally:
                browser.close()

    return page


def test_staff_change_a_zone_and_read_its_audit_history_in_chromium(live_server, chromium):
    get_user_model().objects.create_user(
        "zoe", email="zoe@example.com", password=PASSWORD, is_staff=True, is_superuser=True
    )
    zone = PricingZoneFactory(iso_code="IN", pricing_multiplier=Decimal("0.40"))
    with chromium() as page:
        _change_the_zone_and_read_its_history(page, live_server.url, zone)
    assert PricingZone.objects.get(pk=zone.pk).pricing_multiplier == Decimal("0.45")


def _change_the_zone_and_read_its_history(page, base_url: str, zone: PricingZone) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "zoe")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.title()

    page.goto(f"{base_url}/admin/pricing/pricingzone/{zone.pk}/change/")
    page.fill("#id_pricing_multiplier", "0.45")
    page.fill("#id_audit_reason", "World Bank reclassification 2026")
    page.click("input[name=_continue]")  # "Save and continue editing": back on the zone's page

    page.wait_for_selector("ul.messagelist li.success")
    assert "was changed successfully" in page.inner_text("ul.messagelist")
    assert page.input_value("#id_pricing_multiplier") == "0.45"
    trail = page.inner_text("table.audit-trail")
    assert "zoe" in trail
    assert "pricing_multiplier: 0.40 \u2192 0.45" in trail
    assert "World Bank reclassification 2026" in trail

    page.click("a.audit-log-link")
    page.wait_for_selector("#auditlog-history")
    history = page.inner_text("#auditlog-history")
    assert "zoe" in history
    assert "Reason: World Bank reclassification 2026" in history
    assert "0.40" in history and "0.45" in history
