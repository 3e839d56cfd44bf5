"""Rate limits: per IP, per user, per service, stricter on writes; 429 with Retry-After, problem details."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from jia_payments.core.api.throttling import _WindowThrottle

pytestmark = [pytest.mark.urls("jia_payments.core.tests.ops_urls"), pytest.mark.django_db]

NOW = 1_900_000_050  # 30 s into a minute (windows start at multiples of their length)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(_WindowThrottle, "timer", lambda self: NOW)


def rates(**overrides):
    framework = {**settings.REST_FRAMEWORK}
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **overrides}
    return override_settings(REST_FRAMEWORK=framework)


def unique_ip() -> str:
    number = uuid.uuid4().int
    return f"10.{number % 250}.{number // 250 % 250}.{number // 62500 % 250 + 1}"


def assert_throttled(response, retry_after: int):
    assert response.status_code == 429
    assert response["Retry-After"] == str(retry_after)
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 429
    assert body["code"] == "throttled"
    assert body["title"] == "Too many requests"


@rates(anon="3/min")
def test_anonymous_callers_are_limited_per_ip(anon_client):
    ip = unique_ip()
    statuses = [anon_client.get("/echo/", REMOTE_ADDR=ip).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert_throttled(anon_client.get("/echo/", REMOTE_ADDR=ip), retry_after=30)
    assert anon_client.get("/echo/", REMOTE_ADDR=unique_ip()).status_code == 200


@rates(anon="2/hour")
def test_x_forwarded_for_is_ignored_unless_proxies_are_declared(anon_client):
    ip = unique_ip()
    for n in range(2):
        assert anon_client.get("/echo/", REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR=f"1.2.3.{n}").status_code == 200
    assert_throttled(
        anon_client.get("/echo/", REMOTE_ADDR=ip, HTTP_X_FORWARDED_FOR="1.2.3.9"), 3600 - NOW % 3600
    )


@rates(user="4/min", anon="1/min")
def test_users_are_limited_per_user_not_per_ip(api_client_for):
    alice, bob = (api_client_for(f"user_{uuid.uuid4().hex}") for _ in range(2))
    ip = unique_ip()
    assert [alice.get("/echo/", REMOTE_ADDR=ip).status_code for _ in range(4)] == [200] * 4
    assert_throttled(alice.get("/echo/", REMOTE_ADDR=ip), retry_after=30)
    assert bob.get("/echo/", REMOTE_ADDR=ip).status_code == 200


@rates(user="10/min", write="2/min")
def test_writes_are_limited_more_strictly(api_client_for):
    client = api_client_for(f"user_{uuid.uuid4().hex}")
    assert [client.post("/echo/", {}).status_code for _ in range(2)] == [201, 201]
    assert_throttled(client.post("/echo/", {}), retry_after=30)
    assert client.get("/echo/").status_code == 200  # reads still pass
    assert client.delete("/echo/").status_code == 429  # every unsafe method counts as a write


@rates(service="5/min", write="1/min", user="1/min")
def test_services_have_their_own_limit_and_no_write_limit(api_client_for):
    service = api_client_for(f"svc_{uuid.uuid4().hex}", role="service")
    assert [service.post("/echo/", {}).status_code for _ in range(5)] == [201] * 5
    assert_throttled(service.post("/echo/", {}), retry_after=30)


@rates(anon="1/min")
def test_the_limit_is_a_new_window_later(anon_client, monkeypatch):
    ip = unique_ip()
    assert anon_client.get("/echo/", REMOTE_ADDR=ip).status_code == 200
    assert anon_client.get("/echo/", REMOTE_ADDR=ip).status_code == 429
    monkeypatch.setattr(_WindowThrottle, "timer", lambda self: NOW + 30)
    assert anon_client.get("/echo/", REMOTE_ADDR=ip).status_code == 200


def test_rates_come_from_the_environment():
    code = (
        "from django.conf import settings as s; r = s.REST_FRAMEWORK;"
        "print(r['DEFAULT_THROTTLE_RATES'], r['NUM_PROXIES'])"
    )
    env = {
        **os.environ,
        "THROTTLE_ANON": "7/min",
        "THROTTLE_USER": "70/min",
        "THROTTLE_SERVICE": "700/min",
        "THROTTLE_WRITE": "5/min",
        "THROTTLE_NUM_PROXIES": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=Path(__file__).resolve().parents[3], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "{'anon': '7/min', 'user': '70/min', 'service': '700/min', 'write': '5/min'} 1"
    )


@pytest.mark.parametrize("backend", ["redis", "locmem"])
def test_a_window_counts_every_request_and_expires(backend):
    from django.core.cache import cache
    from django.core.cache.backends.locmem import LocMemCache

    from jia_payments.core.api.throttling import _count_in_window

    store = cache if backend == "redis" else LocMemCache("throttle-test", {})
    assert (backend == "redis") == hasattr(store, "client")
    key = f"throttle:test:{uuid.uuid4().hex}"
    assert [_count_in_window(store, key, 60) for _ in range(3)] == [1, 2, 3]
    if backend == "redis":
        assert 0 < cache.ttl(key) <= 60  # the window's key is never left without an expiry
    assert store.get(key) == 3
