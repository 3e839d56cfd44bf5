"""The entitlement list's answers, byte for byte, for a matrix of callers, filters and pages: the
expected body is built here from the rows (DRF's own fields render each one, DRF's JSONRenderer the
envelope), the links from the query; and the page's statement, prepared and counted."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django_prometheus.db import execute_total
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from entitlements import selectors
from entitlements.models import Entitlement, FamilyMember
from entitlements.serializers import EntitlementSerializer
from entitlements.tests.factories import EntitlementFactory, FamilyFactory, FamilyMemberFactory, plan_with

pytestmark = pytest.mark.django_db

LIST = "/api/v1/entitlements/"
STATUSES = [None, "active", "expired", "cancelled"]
PAGES = [
    {},
    {"limit": 1},
    {"limit": 2, "offset": 1},
    {"limit": 3, "offset": 3},
    {"limit": 100},
    {"offset": 7},
]


@pytest.fixture
def rows():
    """user_alice's own rows (lifetime, expiring, expired, cancelled; floats, nested limits, text
    DRF escapes) and her family's, which user_kid sees; user_gone left that family."""
    plan = plan_with(["calendar", "vault", "exports"], id="matrix_plan")
    family = FamilyFactory(owner_user_id="user_alice", plan=plan)
    FamilyMemberFactory(family=family, user_id="user_alice", role=FamilyMember.Role.OWNER)
    FamilyMemberFactory(family=family, user_id="user_kid")
    other = FamilyFactory(owner_user_id="user_zed", plan=plan)
    FamilyMemberFactory(family=other, user_id="user_zed", role=FamilyMember.Role.OWNER)
    now = datetime.now(UTC)
    kinds = [
        {"feature_id": "calendar"},
        {"feature_id": "vault", "expires_at": now + timedelta(days=3, microseconds=7)},
        {
            "feature_id": "exports",
            "status": "expired",
            "expires_at": now.replace(microsecond=0) - timedelta(1),
        },
        {"feature_id": "calendar", "status": "cancelled", "subscription_id": "sub_c"},
        {"feature_id": "vault", "usage_limits": {"exports_per_day": 10, "nested": {"a": [1, None, True]}}},
        {"feature_id": "exports", "metadata": {"note": "caf\u00e9 \u2028 \U0001f600", "ratio": 0.00001}},
        {
            "feature_id": "calendar",
            "family": family,
            "subscription_id": "sub_f",
            "usage_limits": {"seats": 3},
        },
        {"feature_id": "vault", "family": family, "status": "expired", "granted_at": now - timedelta(9)},
        {"feature_id": "exports", "family": other, "user_id": "user_zed"},
    ]
    features = {feature.code: feature for feature in plan.features.all()}
    for n, kind in enumerate(kinds):
        granted = kind.pop("granted_at", now - timedelta(hours=n, microseconds=n * 13))
        feature, user_id = features[kind.pop("feature_id")], kind.pop("user_id", "user_alice")
        kind.setdefault("subscription_id", f"sub_{n}" if n else "")  # one unkeyed active row per feature
        EntitlementFactory(user_id=user_id, feature=feature, plan=plan, granted_at=granted, **kind)
    same_instant = now - timedelta(days=2)  # ordered by id among equal grant times
    for n in range(2):
        calendar = features["calendar"]
        EntitlementFactory(
            user_id="user_alice",
            feature=calendar,
            plan=plan,
            granted_at=same_instant,
            subscription_id=f"sub_s{n}",
        )
    EntitlementFactory(user_id="user_gone", feature=features["vault"], plan=plan)


def _visible(user_id: str, status: str | None) -> list[Entitlement]:
    families = FamilyMember.objects.filter(user_id=user_id).values_list("family_id", flat=True)
    found = [r for r in Entitlement.objects.all() if r.user_id == user_id or r.family_id in set(families)]
    found = [r for r in found if status is None or r.status == status]
    return sorted(found, key=lambda r: (r.granted_at, r.id), reverse=True)


def _link(params: dict, limit: int, offset: int | None) -> str:
    query = {name: value for name, value in params.items() if name not in ("limit", "offset")}
    query |= {"limit": limit} | ({} if offset is None else {"offset": offset})
    return f"http://testserver{LIST}?{urlencode(sorted(query.items()))}"


def _expected_body(user_id: str, params: dict) -> bytes:
    limit, offset = params.get("limit", 20), params.get("offset", 0)
    found = _visible(user_id, params.get("status"))
    count = len(found)
    previous = None
    if offset > 0:
        previous = _link(params, limit, None if offset - limit <= 0 else offset - limit)
    envelope = {
        "count": count,
        "next": _link(params, limit, offset + limit) if offset + limit < count else None,
        "previous": previous,
        "results": [
            serializers.Serializer.to_representation(EntitlementSerializer(), row)
            for row in found[offset : offset + limit]
        ],
    }
    return JSONRenderer().render(envelope)


def _callers(api_client_for):
    return [
        ("user_alice", api_client_for("user_alice"), False),
        ("user_kid", api_client_for("user_kid"), False),
        ("user_gone", api_client_for("user_gone"), False),
        ("user_nobody", api_client_for("user_nobody"), False),
        ("user_alice", api_client_for("svc_lists", role="service"), True),
        ("user_kid", api_client_for("staff_lists", role="admin"), True),
    ]


def test_every_list_answer_is_the_rows_rendered_by_drf(rows, api_client_for):
    compared = set()
    for user_id, client, names_user in _callers(api_client_for):
        for status in STATUSES:
            for page in PAGES:
                params = {**page, **({"status": status} if status else {})}
                params |= {"user_id": user_id} if names_user else {}
                response = client.get(LIST, params)
                assert response.status_code == 200
                assert response.content == _expected_body(user_id, params), (user_id, params)
                assert (response["Content-Type"], response["Vary"]) == ("application/json", "Accept")
                assert response["Allow"] == "GET, POST, HEAD, OPTIONS"
                compared.add((response.json()["count"] > 0, b"1e-05" in response.content))
    assert compared == {(True, True), (True, False), (False, False)}  # floats, none, empty pages


def test_the_page_statement_is_counted_and_prepared_once_run_often(rows, api_client_for):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    executed = execute_total.labels("default", connection.vendor)
    before = executed._value.get()
    rows, count = selectors.entitlement_list(user_id="user_alice").counted_page(limit=20, offset=0)
    assert executed._value.get() - before == 1  # in the metrics as every statement
    assert (len(rows), count) == (10, 10)
    client = api_client_for("user_alice")
    for _ in range(6):
        assert client.get(LIST).json()["count"] == 10
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    listed = "SELECT id, user_id, family_id, feature_code, plan_id, subscription_id, status, granted_at"
    assert any(statement.startswith(listed) for statement in prepared), prepared


@pytest.mark.django_db(transaction=True)
def test_traced_the_page_statement_is_spanned(traces, rows, api_client_for):
    body = api_client_for("user_kid").get(LIST).json()
    assert body["count"] == len(_visible("user_kid", None)) == 2
    statements = [s.attributes.get("db.statement", "") for s in traces.get_finished_spans()]
    assert any(
        statement.startswith("SELECT id, user_id, family_id, feature_code") for statement in statements
    )
