"""gRPC entitlement.v1.EntitlementService: REST's entitlement calls, answers and rules."""

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from django.utils import timezone
from google.protobuf.timestamp_pb2 import Timestamp

from entitlements import services
from entitlements.models import Entitlement
from entitlements.tests.cases import BAD_CHECKS
from entitlements.tests.factories import END
from jia_payments.core.models import OutboxEvent
from jia_payments.protos.entitlement.v1 import entitlement_pb2 as pb
from jia_payments.protos.entitlement.v1.entitlement_pb2_grpc import EntitlementServiceStub
from testsupport.grpc import failure, field_errors, plain, reason_of, rest_like

SERVICE = ("svc_family_app", "service")


@pytest.fixture
def stub(grpc_channel):
    return EntitlementServiceStub(grpc_channel)


# --- checks ---------------------------------------------------------------------------------


def test_a_check_explains_itself_as_rest_does(stub, as_user, alice_row, api_client_for):
    answer = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar"), metadata=as_user("user_alice")
    )
    assert plain(answer) == {
        "user_id": "user_alice",
        "feature_code": "calendar",
        "has_access": True,
        "reason": "active",
        "expires_at": END,
        "usage_limits": {"storage_gb": 50},
        "source": {"entitlement_id": str(alice_row.pk), "plan_id": "premium_x", "family_id": None},
    }
    rest = api_client_for("user_alice").get("/api/v1/entitlements/check/", {"feature_code": "calendar"})
    assert plain(answer) == rest_like(rest.json())


def test_no_access_says_why_with_no_source(stub, as_user):
    answer = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar"), metadata=as_user("user_alice")
    )
    assert plain(answer) == {
        "user_id": "user_alice",
        "feature_code": "calendar",
        "has_access": False,
        "reason": "no_entitlement",
        "expires_at": None,
        "usage_limits": {},
        "source": None,
    }


def test_a_family_member_s_check_names_the_family(stub, as_user, family):
    answer = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar"), metadata=as_user("user_kid")
    )
    assert (answer.has_access, answer.source.family_id) == (True, str(family.pk))


def test_services_name_the_user_and_users_only_themselves(stub, as_user, alice_row):
    request = pb.CheckEntitlementRequest(feature_code="calendar", user_id="user_alice")
    assert stub.CheckEntitlement(request, metadata=as_user(*SERVICE)).has_access
    error = failure(
        lambda: stub.CheckEntitlement(
            pb.CheckEntitlementRequest(feature_code="calendar"), metadata=as_user(*SERVICE)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error) == {"user_id": ["Required for service and staff callers."]}
    error = failure(lambda: stub.CheckEntitlement(request, metadata=as_user("user_bob")))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # REST's 403 for a check about another user
    assert error.details() == "You may only ask about yourself."
    error = failure(lambda: stub.CheckEntitlement(request))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("fields", "errors"), BAD_CHECKS)
def test_a_check_rejects_what_rest_rejects(stub, as_user, fields, errors):
    error = failure(
        lambda: stub.CheckEntitlement(pb.CheckEntitlementRequest(**fields), metadata=as_user("user_alice"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error) == errors


def test_a_batch_check_answers_each_feature_once(stub, as_user, alice_row):
    answer = stub.BatchCheckEntitlements(
        pb.BatchCheckEntitlementsRequest(feature_codes=["vault", "calendar", "nope", "vault"]),
        metadata=as_user("user_alice"),
    )
    assert answer.user_id == "user_alice"
    assert sorted(answer.results) == ["calendar", "nope", "vault"]
    single = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar"), metadata=as_user("user_alice")
    )
    assert plain(answer.results["calendar"]) == plain(single)
    assert [answer.results[c].has_access for c in ("vault", "calendar", "nope")] == [True, True, False]


@pytest.mark.parametrize(
    ("codes", "errors"),
    [
        ([], {"feature_codes": ["Ensure this field has at least 1 elements."]}),
        (
            [f"f{n}" for n in range(101)],
            {"feature_codes": ["Ensure this field has no more than 100 elements."]},
        ),
        (
            ["ok", "Not Ok"],
            {"feature_codes[1]": ["A feature code: lower-case letters, digits, '-' and '_'."]},
        ),
    ],
)
def test_a_batch_check_rejects_bad_lists(stub, as_user, codes, errors):
    error = failure(
        lambda: stub.BatchCheckEntitlements(
            pb.BatchCheckEntitlementsRequest(feature_codes=codes), metadata=as_user("u")
        )
    )
    assert field_errors(error) == errors


# --- list -------------------------------------------------------------------------------------


def test_the_list_includes_family_rows_counts_all_and_filters(
    stub, as_user, family, alice_row, api_client_for
):
    kid = stub.ListUserEntitlements(pb.ListUserEntitlementsRequest(), metadata=as_user("user_kid"))
    assert kid.total == 1
    assert (kid.entitlements[0].user_id, kid.entitlements[0].family_id) == ("user_alice", str(family.pk))
    service = as_user(*SERVICE)
    alice = stub.ListUserEntitlements(pb.ListUserEntitlementsRequest(user_id="user_alice"), metadata=service)
    rest_service = api_client_for(SERVICE[0], role=SERVICE[1])
    rest = rest_service.get("/api/v1/entitlements/", {"user_id": "user_alice"}).json()
    assert [plain(e) for e in alice.entitlements] == [rest_like(e) for e in rest["results"]]
    assert alice.total == rest["count"] == 3
    services.entitlement_revoke(entitlement_id=alice_row.pk)
    cancelled = stub.ListUserEntitlements(
        pb.ListUserEntitlementsRequest(user_id="user_alice", status="cancelled"), metadata=service
    )
    assert [e.id for e in cancelled.entitlements] == [str(alice_row.pk)]
    page = stub.ListUserEntitlements(
        pb.ListUserEntitlementsRequest(user_id="user_alice", limit=1, offset=1), metadata=service
    )
    assert (page.total, len(page.entitlements)) == (3, 1)
    error = failure(
        lambda: stub.ListUserEntitlements(
            pb.ListUserEntitlementsRequest(user_id="user_bob"), metadata=as_user("user_kid")
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = failure(
        lambda: stub.ListUserEntitlements(
            pb.ListUserEntitlementsRequest(status="paused"), metadata=as_user("user_kid")
        )
    )
    assert field_errors(error) == {"status": ['"paused" is not a valid choice.']}


# --- writes -------------------------------------------------------------------------------------


def _create(**fields) -> pb.CreateEntitlementRequest:
    request = pb.CreateEntitlementRequest(user_id="user_bob", feature_code="calendar", plan_id="premium_x")
    for name, value in fields.items():
        if name in ("metadata", "usage_limits"):
            getattr(request, name).update(value)
        elif name == "expires_at":
            request.expires_at.FromDatetime(value)
        else:
            setattr(request, name, value)
    return request


def test_a_service_creates_an_entitlement_with_its_event(stub, as_user, alice_row, committed):
    with committed():
        created = stub.CreateEntitlement(
            _create(
                expires_at=datetime(2031, 1, 1, tzinfo=UTC), metadata={"note": "goodwill"}, reason="support"
            ),
            metadata=as_user(*SERVICE),
        ).entitlement
    row = Entitlement.objects.get(pk=created.id)
    assert plain(created) == {
        "id": str(row.pk),
        "user_id": "user_bob",
        "family_id": None,
        "feature_code": "calendar",
        "plan_id": "premium_x",
        "subscription_id": "",
        "status": "active",
        "granted_at": row.granted_at,
        "expires_at": datetime(2031, 1, 1, tzinfo=UTC),
        "usage_limits": {"storage_gb": 50},
        "metadata": {"note": "goodwill"},
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    event = OutboxEvent.objects.get(aggregate_id=str(row.pk))
    assert (event.type, rest_like(event.envelope["data"])) == ("entitlement.created", plain(created))
    check = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar", user_id="user_bob"), metadata=as_user(*SERVICE)
    )
    assert check.source.entitlement_id == str(row.pk)  # the cache was invalidated


def test_create_is_idempotent_per_key_and_a_second_grant_already_exists(stub, as_user, alice_row):
    service = as_user(*SERVICE)
    first = stub.CreateEntitlement(_create(idempotency_key="k1"), metadata=service).entitlement
    again = stub.CreateEntitlement(_create(idempotency_key="k1"), metadata=service).entitlement
    assert plain(again) == plain(first)
    assert Entitlement.objects.filter(user_id="user_bob").count() == 1
    error = failure(
        lambda: stub.CreateEntitlement(_create(user_id="user_carol", idempotency_key="k1"), metadata=service)
    )
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused")
    error = failure(lambda: stub.CreateEntitlement(_create(), metadata=service))
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.ALREADY_EXISTS, "entitlement_exists")
    assert Entitlement.objects.filter(user_id="user_bob").count() == 1


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"plan_id": "no_such_plan"}, {"plan_id": ["Unknown plan."]}),
        (
            {"feature_code": "photo_album"},
            {"feature_code": ["'photo_album' is not a feature of plan 'premium_x'."]},
        ),
        ({"family_id": str(uuid.UUID(int=1))}, {"family_id": ["Unknown family."]}),
        ({"family_id": "not-a-uuid"}, {"family_id": ["Must be a valid UUID."]}),
        (
            {"expires_at": datetime(2001, 1, 1, tzinfo=UTC)},
            {"expires_at": ["Must be in the future (or null for lifetime)."]},
        ),
        ({"user_id": ""}, {"user_id": ["This field is required."]}),
    ],
)
def test_create_rejects_bad_input_and_writes_nothing(stub, as_user, alice_row, fields, errors):
    before = (Entitlement.objects.count(), OutboxEvent.objects.count())
    error = failure(lambda: stub.CreateEntitlement(_create(**fields), metadata=as_user(*SERVICE)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(error) == errors
    assert (Entitlement.objects.count(), OutboxEvent.objects.count()) == before


def test_only_services_and_staff_write(stub, as_user, alice_row):
    for call in (
        lambda md: stub.CreateEntitlement(_create(user_id="user_alice"), metadata=md),
        lambda md: stub.UpdateEntitlementStatus(
            pb.UpdateEntitlementStatusRequest(id=str(alice_row.pk), status="cancelled"), metadata=md
        ),
        lambda md: stub.UpdateEntitlementExpiry(
            pb.UpdateEntitlementExpiryRequest(id=str(alice_row.pk)), metadata=md
        ),
    ):
        assert failure(lambda c=call: c(as_user("user_alice"))).code() == grpc.StatusCode.PERMISSION_DENIED
        assert failure(lambda c=call: c(None)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (
        stub.CreateEntitlement(_create(), metadata=as_user("staff_bob", "admin")).entitlement.user_id
        == "user_bob"
    )
    alice_row.refresh_from_db()
    assert (alice_row.status, alice_row.expires_at) == ("active", END)


def test_status_moves_along_the_allowed_moves(stub, as_user, alice_row, committed):
    service = as_user(*SERVICE)
    move = lambda status, reason="": stub.UpdateEntitlementStatus(  # noqa: E731
        pb.UpdateEntitlementStatusRequest(id=str(alice_row.pk), status=status, reason=reason),
        metadata=service,
    )
    with committed():
        assert move("cancelled", "chargeback").entitlement.status == "cancelled"
    check = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar", user_id="user_alice"), metadata=service
    )
    assert check.reason == "revoked"
    error = failure(lambda: move("expired"))
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition")
    assert move("active").entitlement.status == "active"
    types = list(OutboxEvent.objects.filter(aggregate_id=str(alice_row.pk)).values_list("type", flat=True))
    assert types == ["entitlement.created", "entitlement.updated", "entitlement.updated"]
    error = failure(lambda: move("paused"))
    assert field_errors(error) == {"status": ['"paused" is not a valid choice.']}


def test_unknown_ids_are_not_found(stub, as_user):
    service = as_user(*SERVICE)
    for entitlement_id in (str(uuid.uuid4()), "not-a-uuid"):
        status = pb.UpdateEntitlementStatusRequest(id=entitlement_id, status="cancelled")
        expiry = pb.UpdateEntitlementExpiryRequest(id=entitlement_id)
        error = failure(lambda request=status: stub.UpdateEntitlementStatus(request, metadata=service))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = failure(lambda request=expiry: stub.UpdateEntitlementExpiry(request, metadata=service))
        assert error.code() == grpc.StatusCode.NOT_FOUND


def test_expiry_moves_the_end_and_unset_means_lifetime(stub, as_user, alice_row, committed, audit_reasons):
    service = as_user(*SERVICE)
    later = Timestamp()
    later.FromDatetime(datetime(2032, 2, 29, 12, tzinfo=UTC))
    with committed():
        moved = stub.UpdateEntitlementExpiry(
            pb.UpdateEntitlementExpiryRequest(
                id=str(alice_row.pk), expires_at=later, reason="support goodwill"
            ),
            metadata=service,
        )
    assert plain(moved.entitlement)["expires_at"] == datetime(2032, 2, 29, 12, tzinfo=UTC)
    assert audit_reasons(alice_row) == ["support goodwill"]
    with committed():
        lifetime = stub.UpdateEntitlementExpiry(
            pb.UpdateEntitlementExpiryRequest(id=str(alice_row.pk)), metadata=service
        )
    assert not lifetime.entitlement.HasField("expires_at")
    check = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar", user_id="user_alice"), metadata=service
    )
    assert (check.has_access, check.HasField("expires_at")) == (True, False)
    past = Timestamp()
    past.FromDatetime(timezone.now() - timedelta(hours=1))
    with committed():
        stub.UpdateEntitlementExpiry(
            pb.UpdateEntitlementExpiryRequest(id=str(alice_row.pk), expires_at=past), metadata=service
        )
    check = stub.CheckEntitlement(
        pb.CheckEntitlementRequest(feature_code="calendar", user_id="user_alice"), metadata=service
    )
    assert (check.has_access, check.reason) == (False, "expired")
