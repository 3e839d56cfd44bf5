"""`make run`'s purchase path, as a developer meets it: the command `make run` runs at start
registers our webhook with the fake Stripe; a checkout is paid on the fake's pay page as a browser
posts it; the payment is recorded and the plan granted as the events arrive (tasks run eagerly, as
under `make run`); a refund takes the access away again. Callers use development tokens."""

import io
import time

import pytest
import requests
from django.core.management import call_command

from testsupport.localstripe import WEBHOOK_SECRET
from testsupport.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {
    "success_url": "https://app.example/ok?s={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://app.example/no",
}


def _run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


class DevServer:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.tokens = {
            "user": _run("dev_token", role="user", sub="buyer_dev").strip(),
            "service": _run("dev_token", role="service", sub="billing").strip(),
        }

    def call(self, method: str, path: str, *, role: str = "user", **kwargs) -> requests.Response:
        headers = {"better-auth-token": self.tokens[role]}
        return requests.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def access(self, feature: str = "photo_vault") -> dict:
        return self.call("GET", "/api/v1/entitlements/check/", params={"feature_code": feature}).json()


@pytest.fixture
def dev_server(live_server, localstripe, settings, tmp_path):
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    localstripe.flush()
    settings.DEBUG = True  # make run's mode; the API is verified with the development key pair
    settings.AUTH_PUBLIC_KEY_PEM = ""
    settings.AUTH_DEV_KEY_PATH = tmp_path / "var" / "dev_auth_ed25519.pem"
    said = _run("stripe_dev_webhook", base_url=live_server.url)
    assert said.startswith(f"Stripe (local fake at {localstripe.url}) sends its events to {live_server.url}")
    localstripe.set_delivery(paused=False, delay=0.05)
    try:
        yield DevServer(live_server.url)
        wait_for(lambda: localstripe.deliveries_in_flight() == 0, what="webhooks delivered")
    finally:
        webhook_url = said.rsplit(" ", 1)[-1].strip()
        localstripe.configure_webhook(webhook_url, WEBHOOK_SECRET, name="jia-payments", events=[])
        localstripe.set_delivery(paused=False)


def test_buy_on_the_fake_pay_page_then_refund(dev_server, localstripe):
    created = dev_server.call(
        "POST", "/api/v1/checkout/sessions/", json={**BODY, "plan_id": "premium_monthly"}
    )
    assert created.status_code == 201, created.text
    checkout = created.json()
    assert checkout["url"].startswith(f"{localstripe.url}/checkout/pay/cs_test_")
    assert dev_server.access()["has_access"] is False

    page = requests.get(checkout["url"], timeout=30)
    assert page.status_code == 200 and "<button type=submit>Pay</button>" in page.text
    paid_at = time.monotonic()
    paid = requests.post(
        checkout["url"], data={"email": "buyer@example.com"}, allow_redirects=False, timeout=30
    )
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"https://app.example/ok?s={checkout['stripe_session_id']}"

    access = wait_for(lambda: (a := dev_server.access())["has_access"] and a, what="access granted")
    took = time.monotonic() - paid_at
    assert (access["reason"], access["source"]["plan_id"]) == ("active", "premium_monthly")
    session = dev_server.call("GET", f"/api/v1/checkout/sessions/{checkout['id']}/").json()
    assert session["status"] == "complete"
    [payment] = dev_server.call("GET", "/api/v1/payments/", params={"customer_id": "buyer_dev"}).json()[
        "results"
    ]
    assert (payment["status"], payment["amount"], payment["currency"]) == ("completed", 999, "USD")
    print(f"pay click to access granted: {took:.2f} s")

    refunded = dev_server.call(
        "POST",
        f"/api/v1/payments/{payment['id']}/refund/",
        role="service",
        json={"reason": "requested_by_customer"},
    )
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    gone = wait_for(lambda: (a := dev_server.access())["has_access"] is False and a, what="access gone")
    assert gone["reason"] == "revoked"


def test_a_plain_value_is_still_a_user_id_but_a_jwt_shape_is_verified(dev_server):
    plain = requests.get(
        dev_server.base_url + "/api/v1/entitlements/check/",
        params={"feature_code": "photo_vault"},
        headers={"better-auth-token": "spiff_id_test_user_123"},
        timeout=30,
    )
    assert plain.status_code == 200 and plain.json()["user_id"] == "spiff_id_test_user_123"
    for shaped in ("spiff.id.test", dev_server.tokens["user"][:-4] + "AAAA"):
        refused = requests.get(
            dev_server.base_url + "/api/v1/entitlements/check/",
            params={"feature_code": "photo_vault"},
            headers={"better-auth-token": shaped},
            timeout=30,
        )
        assert refused.status_code == 401, shaped


def test_registering_with_the_fake_is_refused_when_debug_is_false(settings):
    from django.core.management import CommandError

    settings.DEBUG = False
    with pytest.raises(CommandError, match="development only"):
        _run("stripe_dev_webhook", base_url="http://127.0.0.1:8000")
