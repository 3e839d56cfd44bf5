"""The check's Redis round trips: the rate limit's count rides on the cache read, and still limits."""

import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from redis.connection import AbstractConnection

from entitlements import cache, services
from entitlements.tests.factories import plan_with
from jia_payments.core.api.throttling import _WindowThrottle

pytestmark = pytest.mark.django_db

NOW = 1_900_000_050  # 30 s into a minute
CHECK = "/api/v1/entitlements/check/?feature_code=calendar"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(_WindowThrottle, "timer", lambda self: NOW)


@pytest.fixture
def user(django_capture_on_commit_callbacks):
    user_id = f"user_{uuid.uuid4().hex}"
    with django_capture_on_commit_callbacks(execute=True):
        services.entitlements_grant_plan(
            user_id=user_id,
            plan=plan_with(["calendar"]),
            subscription_id="s1",
            expires_at=timezone.now() + timedelta(days=3),
        )
    return user_id


@pytest.fixture
def round_trips(monkeypatch):
    """How many times a Redis command (or a pipeline of them) went to the server."""
    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def user_rate(rate: str):
    framework = {**settings.REST_FRAMEWORK}
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], "user": rate}
    return override_settings(REST_FRAMEWORK=framework)


def assert_throttled(response):
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert response.json()["code"] == "throttled"


@user_rate("3/min")
def test_a_warm_check_is_one_round_trip_and_the_limit_still_holds(api_client_for, user, round_trips):
    client = api_client_for(user)
    assert client.get(CHECK).json()["has_access"] is True  # a miss: the entry is stored
    round_trips.clear()
    response = client.get(CHECK)
    assert response.status_code == 200 and response.json()["has_access"] is True
    assert len(round_trips) == 1  # the count and the entry's MGET in one pipeline
    assert client.get(CHECK).status_code == 200
    assert_throttled(client.get(CHECK))  # the fourth in the window
    assert api_client_for(f"other_{uuid.uuid4().hex}").get(CHECK).status_code == 200


def test_a_cold_check_of_a_user_new_to_the_cache_is_two_round_trips(api_client_for, user, round_trips):
    """The read (which gives the user a generation token) and the store of the entry."""
    django_cache = caches["default"]
    cache.redis_client_of(django_cache).delete(django_cache.make_key(cache.generation_key(user)))
    client = api_client_for(user)
    round_trips.clear()
    assert client.get(CHECK).json()["has_access"] is True
    assert len(round_trips) == 2
    round_trips.clear()
    assert client.get(CHECK).json()["has_access"] is True  # the entry was stored: a hit
    assert len(round_trips) == 1


@user_rate("2/min")
def test_the_batch_check_counts_against_the_same_limit(api_client_for, user):
    client = api_client_for(user)
    body = {"feature_codes": ["calendar", "lists"]}
    assert client.get(CHECK).status_code == 200
    assert client.post("/api/v1/entitlements/check/", body, format="json").status_code == 200
    assert_throttled(client.post("/api/v1/entitlements/check/", body, format="json"))


@user_rate("1/min")
def test_a_check_that_reads_no_cache_is_counted_all_the_same(api_client_for, user):
    client = api_client_for(user)
    assert client.get("/api/v1/entitlements/check/?feature_code=Not%20A%20Code").status_code == 400
    assert_throttled(client.get(CHECK))


@user_rate("2/min")
def test_with_the_cache_switched_off_after_an_error_the_limit_still_holds(api_client_for, user):
    cache.breaker.open_until = time.monotonic() + 60
    try:
        client = api_client_for(user)
        assert [client.get(CHECK).status_code for _ in range(2)] == [200, 200]
        assert_throttled(client.get(CHECK))
    finally:
        cache.breaker.reset()


@pytest.mark.django_db(transaction=True)
def test_traced_the_checks_redis_command_has_its_span(traces, api_client_for, user):
    client = api_client_for(user)
    assert client.get(CHECK).json()["has_access"] is True
    traces.clear()
    assert client.get(CHECK).json()["has_access"] is True  # a hit: the one script
    redis_spans = [s for s in traces.get_finished_spans() if s.attributes.get("db.system") == "redis"]
    assert [s.name for s in redis_spans] in (["EVALSHA"], ["EVALSHA", "EVAL"])
