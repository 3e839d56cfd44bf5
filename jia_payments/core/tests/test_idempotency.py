"""Idempotency-Key: replay, body mismatch, scope per caller, expiry and pruning, concurrency."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jia_payments.core.models import IdempotencyKey
from jia_payments.core.tasks import prune_idempotency_keys
from pricing.models import Feature
from testsupport.concurrency import concurrent_posts
from testsupport.problems import assert_problem

pytestmark = pytest.mark.urls("jia_payments.core.tests.urls")

THINGS = "/api/test/things/"
SLOW = "/api/test/slow-things/"


def _post(client, body, key: str | None = "key-1", path: str = THINGS):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(path, body, format="json", **headers)


@pytest.mark.django_db
@pytest.mark.parametrize("path", [THINGS, SLOW])
def test_same_key_same_body_replays_the_first_answer(user_client, path):
    first = _post(user_client, {"code": "thing", "amount": 5}, path=path)
    assert first.status_code == 201
    assert first.json() == {"code": "thing", "name": "thing", "echo": {"code": "thing", "amount": 5}}
    assert "Idempotent-Replayed" not in first
    again = _post(user_client, {"amount": 5, "code": "thing"}, path=path)  # key order does not matter
    assert again.status_code == 201
    assert again.content == first.content  # byte for byte, key order included
    assert again["Idempotent-Replayed"] == "true"
    assert Feature.objects.count() == 1
    row = IdempotencyKey.objects.get()
    assert (row.caller, row.key, row.method, row.path, row.state, row.response_status) == (
        "user:user_alice",
        "key-1",
        "POST",
        path,
        "completed",
        201,
    )


@pytest.mark.django_db
def test_same_key_different_body_is_422_and_writes_nothing(user_client):
    assert _post(user_client, {"code": "thing"}).status_code == 201
    response = _post(user_client, {"code": "other"})
    body = assert_problem(response, 422, "idempotency_key_reused")
    assert "different request" in body["detail"]
    assert list(Feature.objects.values_list("code", flat=True)) == ["thing"]
    # the same key on another endpoint is another request too
    assert_problem(_post(user_client, {"code": "thing"}, path=SLOW), 422, "idempotency_key_reused")


@pytest.mark.django_db
def test_keys_are_scoped_per_caller(user_client, api_client_for, service_client):
    assert _post(user_client, {"code": "alice"}).status_code == 201
    bob = _post(api_client_for("user_bob"), {"code": "bob"})
    assert bob.status_code == 201
    assert bob.json()["code"] == "bob"
    assert _post(service_client, {"code": "svc"}).json()["code"] == "svc"
    assert sorted(Feature.objects.values_list("code", flat=True)) == ["alice", "bob", "svc"]


@pytest.mark.django_db
def test_a_refused_request_does_not_use_up_the_key(user_client):
    assert_problem(
        _post(user_client, {"code": "x" * 99}),
        400,
        "invalid",
        {"code": ["Ensure this field has no more than 64 characters."]},
    )
    assert not IdempotencyKey.objects.exists()
    assert _post(user_client, {"code": "fixed"}).status_code == 201
    assert list(Feature.objects.values_list("code", flat=True)) == ["fixed"]


@pytest.mark.django_db
def test_an_exception_releases_the_key_in_both_modes(user_client):
    assert_problem(_post(user_client, {"code": "explode"}, path=SLOW), 500, "server_error")
    assert list(IdempotencyKey.objects.values_list("state", flat=True)) == ["released"]
    assert _post(user_client, {"code": "fine"}, path=SLOW).status_code == 201
    assert list(IdempotencyKey.objects.values_list("state", flat=True)) == ["completed"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " lead", "trail ", "k" * 256, "naïve", "tab\tkey"])
def test_a_malformed_key_is_400(user_client, key):
    response = _post(user_client, {"code": "thing"}, key=key)
    assert_problem(
        response,
        400,
        "invalid",
        {"Idempotency-Key": ["1 to 255 printable ASCII characters, no leading or trailing space."]},
    )
    assert not Feature.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_characters_is_fine(user_client):
    assert _post(user_client, {"code": "thing"}, key="k" * 255).status_code == 201


@pytest.mark.django_db
def test_without_a_key_every_request_acts(user_client):
    assert _post(user_client, {"code": "a"}, key=None).status_code == 201
    assert _post(user_client, {"code": "b"}, key=None).status_code == 201
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_keys_are_kept_24_hours_then_pruned_by_the_beat_task(user_client):
    assert settings.IDEMPOTENCY_KEY_TTL_HOURS == 24
    assert (
        settings.CELERY_BEAT_SCHEDULE["core.prune_idempotency_keys"]["task"] == "core.prune_idempotency_keys"
    )
    _post(user_client, {"code": "old"}, key="old")
    _post(user_client, {"code": "young"}, key="young")
    now = timezone.now()
    IdempotencyKey.objects.filter(key="old").update(created_at=now - timedelta(hours=24, minutes=1))
    IdempotencyKey.objects.filter(key="young").update(created_at=now - timedelta(hours=23, minutes=59))
    assert prune_idempotency_keys.delay().get() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]


@pytest.mark.django_db
def test_an_expired_key_no_longer_replays(user_client):
    _post(user_client, {"code": "first"})
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = _post(user_client, {"code": "second"})
    assert response.status_code == 201
    assert sorted(Feature.objects.values_list("code", flat=True)) == ["first", "second"]


@pytest.mark.django_db
def test_a_key_in_progress_is_409_for_a_non_atomic_view(user_client):
    IdempotencyKey.objects.create(
        caller="user:user_alice", key="key-1", method="POST", path=SLOW, request_fingerprint="f"
    )
    # a different body is still 422 first; the same body meets the running request
    assert_problem(_post(user_client, {"code": "thing"}, path=SLOW), 422, "idempotency_key_reused")
    IdempotencyKey.objects.update(request_fingerprint=_fingerprint_of(user_client, {"code": "thing"}))
    assert_problem(_post(user_client, {"code": "thing"}, path=SLOW), 409, "idempotency_key_in_progress")
    assert not Feature.objects.exists()


@pytest.mark.django_db
def test_a_key_left_in_progress_by_a_dead_request_is_taken_after_its_lease(user_client, settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = 60
    fingerprint = _fingerprint_of(user_client, {"code": "thing"})
    IdempotencyKey.objects.create(
        caller="user:user_alice", key="key-1", method="POST", path=SLOW, request_fingerprint=fingerprint
    )
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=59))
    assert_problem(_post(user_client, {"code": "thing"}, path=SLOW), 409, "idempotency_key_in_progress")
    assert not Feature.objects.exists()
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    retried = _post(user_client, {"code": "thing"}, path=SLOW)
    assert retried.status_code == 201, retried.content
    replayed = _post(user_client, {"code": "thing"}, path=SLOW)
    assert (replayed.status_code, replayed["Idempotent-Replayed"]) == (201, "true")
    assert list(Feature.objects.values_list("code", flat=True)) == ["thing"]
    [key] = IdempotencyKey.objects.all()
    assert key.state == IdempotencyKey.State.COMPLETED


@pytest.mark.django_db
def test_a_completed_key_is_never_taken_by_the_lease(user_client, settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = 60
    assert _post(user_client, {"code": "thing"}, path=SLOW).status_code == 201
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=1))
    replayed = _post(user_client, {"code": "thing"}, path=SLOW)
    assert replayed["Idempotent-Replayed"] == "true"
    assert Feature.objects.count() == 1


def test_the_lease_is_well_above_the_request_timeout():
    assert settings.IDEMPOTENCY_LEASE_SECONDS == 300


def _fingerprint_of(client, body) -> str:
    from django.test import RequestFactory
    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request

    from jia_payments.core.api.idempotency import request_fingerprint

    raw = RequestFactory().post(SLOW, json.dumps(body), content_type="application/json")
    return request_fingerprint(Request(raw, parsers=[JSONParser()]))


@pytest.mark.django_db(transaction=True)
def test_20_concurrent_requests_with_one_key_make_one_effect(live_server, token_issuer):
    results = concurrent_posts(
        f"{live_server.url}{THINGS}", token_issuer.token("user_alice"), {"code": "raced"}, 20
    )
    assert Feature.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    expected = {"code": "raced", "name": "thing", "echo": {"code": "raced"}}
    # the atomic mode serialises them: one ran, nineteen waited and got its answer
    assert [(status, body) for status, body, _ in results] == [(201, expected)] * 20
    assert sum(not replayed for _, _, replayed in results) == 1


@pytest.mark.django_db(transaction=True)
def test_20_concurrent_requests_to_a_non_atomic_view_make_one_effect(live_server, token_issuer):
    results = concurrent_posts(
        f"{live_server.url}{SLOW}", token_issuer.token("user_alice"), {"code": "raced"}, 20
    )
    assert Feature.objects.count() == 1
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert {body["code"] for status, body, _ in results if status == 409} <= {"idempotency_key_in_progress"}
    assert {json.dumps(body) for status, body, _ in results if status == 201} == {
        json.dumps({"code": "raced", "name": "thing", "echo": {"code": "raced"}})
    }
