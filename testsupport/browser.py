"""Headless Chromium (Debian's `chromium`) driven by Playwright, for the admin's browser tests.

Playwright's sync API runs an event loop in the calling thread while a page is open: a test
touches the database before and after `with chromium_page() as page:`, not inside it."""

import os
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000  # per action: a bound for a busy 2-core machine, not a speed assertion
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"


@contextmanager
def chromium_page(*, viewport=None):
    """A fresh Chromium page; on leaving, the browser and its processes are gone."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """The whole page as var/screenshots/<name>.png (kept out of git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
