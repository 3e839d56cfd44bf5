"""The Entitlements and Families endpoints of API.md: bodies, permissions, validation, idempotency."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from entitlements import services
from entitlements.models import Entitlement, FamilyMember
from entitlements.tests.cases import BAD_CHECKS
from entitlements.tests.factories import END
from jia_payments.core.models import OutboxEvent
from testsupport.problems import assert_problem

pytestmark = pytest.mark.django_db

CHECK = "/api/v1/entitlements/check/"
LIST = "/api/v1/entitlements/"


def _status_url(pk):
    return f"/api/v1/entitlements/{pk}/status/"


def _expiry_url(pk):
    return f"/api/v1/entitlements/{pk}/expiry/"


def _members_url(family_id):
    return f"/api/v1/families/{family_id}/members/"


# --- check -----------------------------------------------------------------------------------


def test_check_for_yourself(user_client, alice_row):
    response = user_client.get(CHECK, {"feature_code": "calendar"})
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "user_alice",
        "feature_code": "calendar",
        "has_access": True,
        "reason": "active",
        "expires_at": "2031-05-17T08:00:00Z",
        "usage_limits": {"storage_gb": 50},
        "source": {"entitlement_id": str(alice_row.pk), "plan_id": "premium_x", "family_id": None},
    }
    assert user_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_alice"}).json()["has_access"]


def test_check_without_access_explains_why(user_client):
    assert user_client.get(CHECK, {"feature_code": "calendar"}).json() == {
        "user_id": "user_alice",
        "feature_code": "calendar",
        "has_access": False,
        "reason": "no_entitlement",
        "expires_at": None,
        "usage_limits": {},
        "source": None,
    }


def test_a_cached_check_over_http_runs_no_sql(user_client, alice_row, django_assert_num_queries):
    user_client.get(CHECK, {"feature_code": "calendar"})
    with django_assert_num_queries(0):
        assert user_client.get(CHECK, {"feature_code": "calendar"}).json()["has_access"] is True
    with django_assert_num_queries(0):
        response = user_client.post(CHECK, {"feature_codes": ["calendar", "vault", "x"]}, format="json")
    assert response.status_code == 200


def test_services_and_staff_check_anyone_and_must_say_who(service_client, staff_client, alice_row):
    for client in (service_client, staff_client):
        response = client.get(CHECK, {"feature_code": "calendar", "user_id": "user_alice"})
        assert response.json()["has_access"] is True
        assert_problem(
            client.get(CHECK, {"feature_code": "calendar"}),
            422,
            "invalid",
            {"user_id": ["Required for service and staff callers."]},
        )


def test_a_user_cannot_check_someone_else(user_client, anon_client):
    assert_problem(
        user_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_bob"}), 403, "permission_denied"
    )
    assert_problem(
        user_client.post(CHECK, {"user_id": "user_bob", "feature_codes": ["a"]}, format="json"),
        403,
        "permission_denied",
    )
    assert_problem(anon_client.get(CHECK, {"feature_code": "calendar"}), 401, "not_authenticated")
    assert_problem(anon_client.post(CHECK, {"feature_codes": ["a"]}, format="json"), 401, "not_authenticated")


@pytest.mark.parametrize(("query", "errors"), BAD_CHECKS)
def test_check_rejects_bad_queries(user_client, query, errors):
    assert_problem(user_client.get(CHECK, query), 400, "invalid", errors)


def test_batch_check(user_client, alice_row):
    response = user_client.post(
        CHECK, {"feature_codes": ["vault", "calendar", "nope", "vault"]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "user_alice"
    assert list(body["results"]) == ["vault", "calendar", "nope"]
    assert body["results"]["calendar"] == user_client.get(CHECK, {"feature_code": "calendar"}).json()
    assert [r["has_access"] for r in body["results"].values()] == [True, True, False]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"feature_codes": ["This field is required."]}),
        ({"feature_codes": []}, {"feature_codes": ["Ensure this field has at least 1 elements."]}),
        ({"feature_codes": "calendar"}, {"feature_codes": ['Expected a list of items but got type "str".']}),
        (
            {"feature_codes": [f"f{n}" for n in range(101)]},
            {"feature_codes": ["Ensure this field has no more than 100 elements."]},
        ),
        ({"feature_codes": ["ok", 7]}, {"feature_codes[1]": ["A string is required."]}),
        ({"feature_codes": ["a"], "extra": 1}, {"extra": ["Unknown field."]}),
    ],
)
def test_batch_check_rejects_bad_bodies(user_client, body, errors):
    problem = assert_problem(user_client.post(CHECK, body, format="json"), 400, "invalid", errors)
    assert problem["detail"]


def test_the_batch_check_is_a_read_for_the_rate_limits(user_client, settings, monkeypatch):
    """A POST, but no write: the write limit does not apply; the user's own limit still does."""
    from jia_payments.core.api.throttling import _WindowThrottle

    monkeypatch.setattr(_WindowThrottle, "timer", lambda self: 1_900_000_050)
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "write": "2/min",
            "user": "4/min",
        },
    }
    body = {"feature_codes": ["calendar"]}
    assert [user_client.post(CHECK, body, format="json").status_code for _ in range(4)] == [200] * 4
    assert_problem(user_client.post(CHECK, body, format="json"), 429, "throttled")


def _read_by(read, serializer_class, data):
    """What a reader makes of input: its validated data, or the errors it raises."""
    from rest_framework.exceptions import ValidationError

    try:
        return read(data) if read else _validated(serializer_class, data)
    except ValidationError as error:
        return ("invalid", error.detail)


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@pytest.mark.parametrize(
    "query",
    [
        {"feature_code": "calendar"},
        {"feature_code": "a" * 64, "user_id": "svc:user_1@x.y-z"},
        {"feature_code": "a" * 65},
        {"feature_code": "calendar\n"},
        {"feature_code": " calendar "},
        {"feature_code": "Calendar"},
        {"feature_code": "calendar", "user_id": " user_bob"},
        {"feature_code": "calendar", "user_id": "user bob"},
        {"feature_code": "calendar", "user_id": ""},
        {"user_id": "user_bob"},
    ],
)
def test_the_fast_check_query_reads_like_the_serializer(query):
    from django.http import QueryDict

    from entitlements.api import CheckQuery, _check_query

    params = QueryDict(mutable=True)
    params.update(query)
    assert _read_by(_check_query, None, params) == _read_by(None, CheckQuery, params)


@pytest.mark.parametrize(
    "body",
    [
        {"feature_codes": ["vault", "calendar-2", "x_1"]},
        {"feature_codes": ["vault"], "user_id": "user_alice"},
        {"feature_codes": ["vault", "vault "]},
        {"feature_codes": ["vault"], "user_id": None},
        {"feature_codes": ["vault"], "extra": 1},
        {"feature_codes": []},
        {"feature_codes": [f"f{n}" for n in range(101)]},
        {"feature_codes": [7]},
        {"feature_codes": "vault"},
        ["vault"],
    ],
)
def test_the_fast_batch_body_reads_like_the_serializer(body):
    from entitlements.api import BatchCheckIn, _batch_body

    assert _read_by(_batch_body, None, body) == _read_by(None, BatchCheckIn, body)


def test_check_dates_render_as_drf_renders_them():
    from rest_framework import serializers as drf

    from jia_payments.core.api.timestamps import iso_utc

    plus_two = timezone.get_fixed_timezone(120)
    for value in (
        END,
        END.replace(microsecond=120),
        datetime(2030, 1, 1, 23, 0, 0, 5, tzinfo=UTC),
        datetime(2030, 1, 1, 1, 0, tzinfo=plus_two),
    ):
        assert iso_utc(value) == drf.DateTimeField().to_representation(value)


def test_a_batch_of_one_hundred_is_fine(user_client):
    response = user_client.post(CHECK, {"feature_codes": [f"f{n}" for n in range(100)]}, format="json")
    assert len(response.json()["results"]) == 100


# --- list --------------------------------------------------------------------------------------


def test_list_includes_family_rows_and_filters_by_status(api_client_for, family, alice_row, service_client):
    kid = api_client_for("user_kid")
    body = kid.get(LIST).json()
    assert body["count"] == 1
    [row] = body["results"]
    assert (row["user_id"], row["family_id"], row["feature_code"]) == (
        "user_alice",
        str(family.pk),
        "calendar",
    )
    assert set(row) == {
        "id", "user_id", "family_id", "feature_code", "plan_id", "subscription_id", "status",
        "granted_at", "expires_at", "usage_limits", "metadata", "created_at", "updated_at",
    }  # fmt: skip

    alice = service_client.get(LIST, {"user_id": "user_alice"}).json()
    assert alice["count"] == 3
    services.entitlement_revoke(entitlement_id=alice_row.pk)
    cancelled = service_client.get(LIST, {"user_id": "user_alice", "status": "cancelled"}).json()
    assert [r["id"] for r in cancelled["results"]] == [str(alice_row.pk)]
    page = service_client.get(LIST, {"user_id": "user_alice", "limit": 1, "offset": 1}).json()
    assert (page["count"], len(page["results"])) == (3, 1)


def test_a_list_page_is_one_query_newest_first_and_counts_past_its_last_page(
    service_client, family, alice_row, django_assert_num_queries
):
    newest = services.entitlement_create(user_id="user_alice", feature_code="calendar", plan_id="premium_x")
    with django_assert_num_queries(1):
        body = service_client.get(LIST, {"user_id": "user_alice"}).json()
    rows = [(r["granted_at"], r["id"]) for r in body["results"]]
    assert rows == sorted(rows, reverse=True)
    assert (body["count"], rows[0][1]) == (4, str(newest.pk))
    past = service_client.get(LIST, {"user_id": "user_alice", "status": "active", "limit": 2, "offset": 10})
    assert past.json() == {
        "count": 4,
        "next": None,
        "previous": "http://testserver/api/v1/entitlements/?limit=2&offset=8&status=active&user_id=user_alice",
        "results": [],
    }
    empty = service_client.get(LIST, {"user_id": "user_nobody"}).json()
    assert (empty["count"], empty["results"]) == (0, [])


def test_list_permissions_and_filters(user_client, service_client, anon_client):
    assert_problem(user_client.get(LIST, {"user_id": "user_bob"}), 403, "permission_denied")
    assert_problem(anon_client.get(LIST), 401, "not_authenticated")
    assert_problem(
        service_client.get(LIST), 422, "invalid", {"user_id": ["Required for service and staff callers."]}
    )
    assert_problem(
        user_client.get(LIST, {"status": "paused"}),
        400,
        "invalid",
        {"status": ['"paused" is not a valid choice.']},
    )
    limit_error = {"limit": ["Must be a whole number between 1 and 100."]}
    assert_problem(user_client.get(LIST, {"limit": 0}), 400, "invalid", limit_error)


# --- create ------------------------------------------------------------------------------------


def _create_body(**overrides):
    return {"user_id": "user_bob", "feature_code": "calendar", "plan_id": "premium_x", **overrides}


def test_a_service_creates_an_entitlement(service_client, alice_row, committed):
    with committed():
        response = service_client.post(
            LIST,
            _create_body(expires_at="2031-01-01T00:00:00Z", metadata={"note": "goodwill"}),
            format="json",
        )
    assert response.status_code == 201
    body = response.json()
    row = Entitlement.objects.get(pk=body["id"])
    assert body == {
        "id": str(row.pk),
        "user_id": "user_bob",
        "family_id": None,
        "feature_code": "calendar",
        "plan_id": "premium_x",
        "subscription_id": "",
        "status": "active",
        "granted_at": body["granted_at"],
        "expires_at": "2031-01-01T00:00:00Z",
        "usage_limits": {"storage_gb": 50},
        "metadata": {"note": "goodwill"},
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    event = OutboxEvent.objects.get(aggregate_id=str(row.pk))
    assert (event.type, event.envelope["data"]) == ("entitlement.created", body)
    check = service_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_bob"}).json()
    assert check["source"]["entitlement_id"] == str(row.pk)


def test_create_is_idempotent_per_key(service_client, alice_row):
    first = service_client.post(LIST, _create_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = service_client.post(LIST, _create_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert Entitlement.objects.filter(user_id="user_bob").count() == 1
    other = service_client.post(
        LIST, _create_body(user_id="user_carol"), format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert_problem(other, 422, "idempotency_key_reused")


def test_a_second_active_grant_of_the_same_feature_is_409(service_client, alice_row):
    assert service_client.post(LIST, _create_body(), format="json").status_code == 201
    assert_problem(service_client.post(LIST, _create_body(), format="json"), 409, "entitlement_exists")
    assert Entitlement.objects.filter(user_id="user_bob").count() == 1


@pytest.mark.parametrize(
    ("overrides", "errors", "status"),
    [
        ({"plan_id": "no_such_plan"}, {"plan_id": ["Unknown plan."]}, 422),
        (
            {"feature_code": "photo_album"},
            {"feature_code": ["'photo_album' is not a feature of plan 'premium_x'."]},
            422,
        ),
        ({"family_id": str(uuid.UUID(int=1))}, {"family_id": ["Unknown family."]}, 422),
        ({"family_id": "not-a-uuid"}, {"family_id": ["Must be a valid UUID."]}, 400),
        ({"family_id": 12}, {"family_id": ["Must be a valid UUID."]}, 400),
        (
            {"expires_at": "2001-01-01T00:00:00Z"},
            {"expires_at": ["Must be in the future (or null for lifetime)."]},
            422,
        ),
        ({"user_id": ""}, {"user_id": ["This field may not be blank."]}, 400),
        ({"user_id": 5}, {"user_id": ["A string is required."]}, 400),
        ({"metadata": ["x"]}, {"metadata": ["A JSON object is required."]}, 400),
        ({"usage_limits": {"x": "y" * 5000}}, {"usage_limits": ["At most 4096 bytes of JSON."]}, 400),
        ({"status": "active"}, {"status": ["Unknown field."]}, 400),
    ],
)
def test_create_rejects_bad_input_and_writes_nothing(service_client, alice_row, overrides, errors, status):
    """400: the schema forbids the body; 422: well-formed, but the data do not fit it."""
    before = (Entitlement.objects.count(), OutboxEvent.objects.count())
    assert_problem(
        service_client.post(LIST, _create_body(**overrides), format="json"), status, "invalid", errors
    )
    assert (Entitlement.objects.count(), OutboxEvent.objects.count()) == before


def test_only_services_and_staff_create(user_client, anon_client, staff_client, alice_row):
    assert_problem(
        user_client.post(LIST, _create_body(user_id="user_alice"), format="json"), 403, "permission_denied"
    )
    assert_problem(anon_client.post(LIST, _create_body(), format="json"), 401, "not_authenticated")
    assert staff_client.post(LIST, _create_body(), format="json").status_code == 201


# --- status and expiry --------------------------------------------------------------------------


def test_status_changes_along_the_allowed_moves(service_client, alice_row, committed):
    url = _status_url(alice_row.pk)
    with committed():
        response = service_client.post(url, {"status": "cancelled", "reason": "chargeback"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    check = service_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_alice"}).json()
    assert check["reason"] == "revoked"
    assert_problem(service_client.post(url, {"status": "expired"}, format="json"), 409, "invalid_transition")
    assert service_client.post(url, {"status": "active"}, format="json").json()["status"] == "active"
    types = list(OutboxEvent.objects.filter(aggregate_id=str(alice_row.pk)).values_list("type", flat=True))
    assert types == ["entitlement.created", "entitlement.updated", "entitlement.updated"]
    service_client.post(url, {"status": "expired"}, format="json")
    assert OutboxEvent.objects.filter(aggregate_id=str(alice_row.pk)).last().type == "entitlement.expired"


def test_status_and_expiry_refuse_bad_input_unknown_ids_and_end_users(service_client, user_client, alice_row):
    for url in (_status_url(alice_row.pk), _expiry_url(alice_row.pk)):
        assert_problem(
            user_client.post(url, {"status": "cancelled"}, format="json"), 403, "permission_denied"
        )
    for pk in (uuid.uuid4(), "not-a-uuid"):
        assert_problem(
            service_client.post(_status_url(pk), {"status": "cancelled"}, format="json"), 404, "not_found"
        )
        assert_problem(
            service_client.post(_expiry_url(pk), {"expires_at": None}, format="json"), 404, "not_found"
        )
    assert_problem(
        service_client.post(_status_url(alice_row.pk), {"status": "paused"}, format="json"),
        400,
        "invalid",
        {"status": ['"paused" is not a valid choice.']},
    )
    assert_problem(
        service_client.post(_expiry_url(alice_row.pk), {}, format="json"),
        400,
        "invalid",
        {"expires_at": ["This field is required."]},
    )
    alice_row.refresh_from_db()
    assert (alice_row.status, alice_row.expires_at) == ("active", END)


def test_expiry_moves_the_end_and_null_means_lifetime(service_client, alice_row, committed, audit_reasons):
    url = _expiry_url(alice_row.pk)
    with committed():
        body = service_client.post(
            url, {"expires_at": "2032-02-29T12:00:00Z", "reason": "support goodwill"}, format="json"
        ).json()
    assert body["expires_at"] == "2032-02-29T12:00:00Z"
    assert audit_reasons(alice_row) == ["support goodwill"]
    with committed():
        body = service_client.post(url, {"expires_at": None}, format="json").json()
    assert body["expires_at"] is None
    check = service_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_alice"}).json()
    assert (check["has_access"], check["expires_at"]) == (True, None)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    with committed():
        service_client.post(url, {"expires_at": past}, format="json")
    check = service_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_alice"}).json()
    assert (check["has_access"], check["reason"]) == (False, "expired")


# --- families ----------------------------------------------------------------------------------


def test_members_are_listed_to_members_services_and_staff(
    user_client, api_client_for, service_client, family
):
    expected = [("user_alice", "owner"), ("user_kid", "member")]
    for client in (user_client, api_client_for("user_kid"), service_client):
        body = client.get(_members_url(family.pk)).json()
        assert body["count"] == 2
        assert [(m["user_id"], m["role"]) for m in body["results"]] == expected
        assert set(body["results"][0]) == {"user_id", "role", "added_at"}
    assert_problem(api_client_for("user_stranger").get(_members_url(family.pk)), 404, "not_found")
    assert_problem(service_client.get(_members_url(uuid.uuid4())), 404, "not_found")
    assert_problem(service_client.get(_members_url("nope")), 404, "not_found")


def test_the_owner_adds_a_member_who_gets_the_features_at_once(
    user_client, api_client_for, family, committed
):
    newcomer = api_client_for("user_new")
    assert newcomer.get(CHECK, {"feature_code": "calendar"}).json()["has_access"] is False
    with committed():
        response = user_client.post(_members_url(family.pk), {"user_id": "user_new"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["user_id"], body["role"]) == ("user_new", "member")
    assert newcomer.get(CHECK, {"feature_code": "calendar"}).json()["has_access"] is True


def test_adding_beyond_max_users_is_409_plan_full(user_client, family):
    assert user_client.post(_members_url(family.pk), {"user_id": "user_3"}, format="json").status_code == 201
    assert_problem(
        user_client.post(_members_url(family.pk), {"user_id": "user_4"}, format="json"), 409, "plan_full"
    )
    assert_problem(
        user_client.post(_members_url(family.pk), {"user_id": "user_3"}, format="json"), 409, "plan_full"
    )
    assert FamilyMember.objects.filter(family=family).count() == 3


def test_add_member_permissions_validation_and_idempotency(
    user_client, api_client_for, service_client, family
):
    url = _members_url(family.pk)
    assert_problem(
        api_client_for("user_kid").post(url, {"user_id": "x"}, format="json"), 403, "permission_denied"
    )
    assert_problem(
        api_client_for("user_stranger").post(url, {"user_id": "x"}, format="json"), 404, "not_found"
    )
    assert_problem(user_client.post(url, {"user_id": "user_kid"}, format="json"), 409, "already_member")
    assert_problem(
        user_client.post(url, {"user": "x"}, format="json"),
        400,
        "invalid",
        {"user": ["Unknown field."], "user_id": ["This field is required."]},
    )
    first = service_client.post(url, {"user_id": "user_3"}, format="json", HTTP_IDEMPOTENCY_KEY="add-3")
    again = service_client.post(url, {"user_id": "user_3"}, format="json", HTTP_IDEMPOTENCY_KEY="add-3")
    assert (first.status_code, again.content) == (201, first.content)
    assert FamilyMember.objects.filter(family=family).count() == 3


def test_removal_takes_access_away_at_once(user_client, api_client_for, family, committed):
    kid = api_client_for("user_kid")
    assert kid.get(CHECK, {"feature_code": "calendar"}).json()["has_access"] is True
    with committed():
        response = user_client.delete(f"{_members_url(family.pk)}user_kid/")
    assert response.status_code == 204
    assert kid.get(CHECK, {"feature_code": "calendar"}).json()["reason"] == "no_entitlement"
    assert kid.get(LIST).json()["count"] == 0


def test_remove_member_permissions(user_client, api_client_for, service_client, family):
    url = f"{_members_url(family.pk)}user_kid/"
    assert_problem(api_client_for("user_kid").delete(url), 403, "permission_denied")
    assert_problem(api_client_for("user_stranger").delete(url), 404, "not_found")
    assert_problem(user_client.delete(f"{_members_url(family.pk)}user_alice/"), 409, "owner_cannot_leave")
    assert_problem(user_client.delete(f"{_members_url(family.pk)}nobody/"), 404, "not_found")
    assert service_client.delete(url).status_code == 204


def test_the_bench_endpoint_is_not_mounted_by_default(user_client):
    assert_problem(user_client.get("/api/v1/_bench/constant/"), 404, "not_found")


def test_an_entitlement_id_is_one_text_in_lists_checks_and_batch_checks(service_client, family):
    listed = service_client.get(LIST, {"user_id": "user_kid"}).json()["results"]
    [row] = listed
    one = service_client.get(CHECK, {"feature_code": "calendar", "user_id": "user_kid"}).json()
    batch = service_client.post(CHECK, {"user_id": "user_kid", "feature_codes": ["calendar"]}, format="json")
    sources = [one["source"], batch.json()["results"]["calendar"]["source"]]
    assert {s["entitlement_id"] for s in sources} == {row["id"]} == {str(uuid.UUID(row["id"]))}
    assert {s["family_id"] for s in sources} == {row["family_id"]} == {str(family.pk)}


def test_raw_rows_uuids_read_dashed_whatever_the_database_hands_back():
    from entitlements.selectors import _uuid_text

    dashed = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert {_uuid_text(dashed), _uuid_text(dashed.replace("-", "")), _uuid_text(uuid.UUID(dashed))} == {
        dashed
    }
