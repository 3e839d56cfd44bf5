"""The lean dispatch (`core.api.lean`) of the check and the list answers what DRF's dispatch
answers: the same status, body bytes and headers, for the calls it serves and for those it leaves
to DRF; and the rate limits count each request once whichever dispatch serves it."""

import contextlib
import json
import re
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from entitlements.api import EntitlementCheckView, EntitlementListView
from entitlements.models import Entitlement
from entitlements.tests.factories import EntitlementFactory
from jia_payments.core.api.throttling import _WindowThrottle
from testsupport.logcapture import capture_logs

pytestmark = pytest.mark.django_db

CHECK = "/api/v1/entitlements/check/"
LIST = "/api/v1/entitlements/"
LEAN, DRF = "lean", "drf"
_CSRF_TOKEN = re.compile(rb"\b[A-Za-z0-9]{64}\b")  # a new one in each browsable page and its cookie
_COOKIE_EXPIRES = re.compile(rb"expires=[^;]*")  # to the second: two calls may straddle one


@pytest.fixture
def rows(alice_row, family):
    """user_alice: calendar (direct and through her family), an expired and a revoked row;
    user_kid: calendar through the family."""
    EntitlementFactory(
        user_id="user_alice",
        feature__code="photos",
        status=Entitlement.Status.EXPIRED,
        expires_at=timezone.now() - timedelta(days=3),
    )
    EntitlementFactory(user_id="user_alice", feature__code="chores", status=Entitlement.Status.CANCELLED)


@pytest.fixture
def dispatches(monkeypatch):
    """Which dispatch served each request since: DRF's when its `initial` ran."""
    served = []
    initial = APIView.initial

    def counted(view, request, *args, **kwargs):
        served.append(DRF)
        return initial(view, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", counted)
    return served


@contextlib.contextmanager
def drf_dispatch(view=EntitlementCheckView):
    """The view as it was: DRF's dispatch for every call."""
    view.dispatch = APIView.dispatch
    try:
        yield
    finally:
        del view.dispatch


def _call(client, method: str, path: str, body=None, **headers):
    headers.setdefault("X-Request-ID", "lean-check-test")  # otherwise each answer's own uuid
    if body is None:
        response = client.generic(method, path, headers=headers)
    else:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        content_type = headers.pop("Content-Type", "application/json")
        response = client.generic(method, path, data, content_type=content_type, headers=headers)
    content, cookies = response.content, response.cookies.output().encode()
    if response["Content-Type"].startswith("text/html"):
        content, cookies = _CSRF_TOKEN.sub(b"<csrf>", content), _CSRF_TOKEN.sub(b"<csrf>", cookies)
        cookies = _COOKIE_EXPIRES.sub(b"expires=<date>", cookies)
    return response.status_code, content, sorted(response.items()), cookies


def _lean_and_drf(client, dispatches, *request, view=EntitlementCheckView, **headers):
    """(the answer now, how it was served, DRF's answer to the same call)."""
    _call(client, *request, **headers)  # the cache filled: both answers from it
    dispatches.clear()
    lean = _call(client, *request, **headers)
    served = DRF if dispatches else LEAN
    with drf_dispatch(view):
        drf = _call(client, *request, **headers)
    return lean, served, drf


def _headers(token, caller, extra):
    headers = {} if caller is None else {"Better-Auth-Token": token(caller)}
    return {**headers, **extra}


@pytest.fixture
def token(token_issuer):
    tokens = {
        "user": token_issuer.token("user_alice"),
        "kid": token_issuer.token("user_kid"),
        "service": token_issuer.token("svc_app", role="service"),
        "staff": token_issuer.token("staff_bob", role="admin"),
        "expired": token_issuer.token("user_alice", ttl=-600),
    }
    return tokens.__getitem__


SERVED_LEAN = [
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=calendar&user_id=user_alice", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=photos", None, {}),  # expired
    ("user", "GET", f"{CHECK}?feature_code=chores", None, {}),  # revoked
    ("user", "GET", f"{CHECK}?feature_code=unknown_feature", None, {}),
    ("kid", "GET", f"{CHECK}?feature_code=calendar", None, {}),  # through the family
    ("service", "GET", f"{CHECK}?feature_code=calendar&user_id=user_kid", None, {}),
    ("staff", "GET", f"{CHECK}?feature_code=calendar&user_id=user_alice", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Accept": "*/*"}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Accept": "application/json"}),
    (
        "user",
        "POST",
        CHECK,
        {"feature_codes": ["calendar", "vault", "photos", "chores", "nope", "calendar"]},
        {},
    ),
    ("kid", "POST", CHECK, {"feature_codes": ["calendar", "vault"]}, {}),
    ("service", "POST", CHECK, {"user_id": "user_alice", "feature_codes": ["calendar"]}, {}),
    ("staff", "POST", CHECK, {"user_id": "user_kid", "feature_codes": ["calendar"]}, {}),
    # errors the view itself raises (its input rules, whom a caller may ask about)
    ("user", "GET", CHECK, None, {}),
    ("user", "GET", f"{CHECK}?feature_code=Bad%20Code", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=calendar&extra=1", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=calendar&user_id=user_bob", None, {}),
    ("service", "GET", f"{CHECK}?feature_code=calendar", None, {}),
    ("user", "POST", CHECK, {"feature_codes": []}, {}),
    ("user", "POST", CHECK, {"feature_codes": [f"f{n}" for n in range(101)]}, {}),
    ("user", "POST", CHECK, {"feature_codes": ["a"], "extra": 1}, {}),
    ("user", "POST", CHECK, {"user_id": "user_bob", "feature_codes": ["a"]}, {}),
    ("service", "POST", CHECK, {"feature_codes": ["a"]}, {}),
    ("user", "POST", CHECK, b'{"feature_codes": ["a"', {}),  # malformed JSON
    ("user", "POST", CHECK, b'{"feature_codes": ["a"], "feature_codes": ["b"]}', {}),  # a key twice
    ("user", "POST", CHECK, b"feature_codes=a", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("user", "POST", CHECK, b"", {}),
    ("user", "POST", CHECK, b"null", {}),
    (
        "user",
        "POST",
        CHECK,
        b'{"feature_codes": ["calendar"]}',
        {"Content-Type": "application/json; charset=utf-8"},
    ),
    (
        "user",
        "POST",
        CHECK,
        b'{"feature_codes": ["calendar"]}',
        {"Content-Type": "application/json; charset=bz2_codec"},
    ),
    ("user", "POST", CHECK, b'{"feature_codes": ["\\ud800"]}', {}),  # an unpaired surrogate
]

SERVED_BY_DRF = [
    (None, "GET", f"{CHECK}?feature_code=calendar", None, {}),
    (None, "POST", CHECK, {"feature_codes": ["calendar"]}, {}),
    ("expired", "GET", f"{CHECK}?feature_code=calendar", None, {}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Better-Auth-Token": "not.a.jwt"}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Accept": "text/html"}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Accept": "application/json; indent=4"}),
    ("user", "GET", f"{CHECK}?feature_code=calendar", None, {"Accept": "image/png"}),
    ("user", "GET", f"{CHECK}?feature_code=calendar&format=json", None, {}),
    ("user", "OPTIONS", CHECK, None, {}),
    ("user", "HEAD", f"{CHECK}?feature_code=calendar", None, {}),
    ("user", "PUT", CHECK, {"feature_codes": ["calendar"]}, {}),
    ("user", "DELETE", CHECK, None, {}),
]


LIST_SERVED_LEAN = [
    ("user", f"{LIST}", {}),
    ("user", f"{LIST}?status=active", {}),
    ("user", f"{LIST}?limit=1&offset=1", {}),  # next and previous links
    ("kid", f"{LIST}", {}),  # through the family
    ("service", f"{LIST}?user_id=user_alice", {}),
    ("staff", f"{LIST}?user_id=user_kid&status=cancelled", {}),
    ("user", f"{LIST}", {"Accept": "application/json"}),
    ("user", f"{LIST}?limit=0", {}),
    ("user", f"{LIST}?status=bogus", {}),
    ("user", f"{LIST}?user_id=user_bob", {}),
    ("service", f"{LIST}", {}),
]
LIST_SERVED_BY_DRF = [
    (None, f"{LIST}", {}),
    ("expired", f"{LIST}", {}),
    ("user", f"{LIST}", {"Accept": "application/json; indent=2"}),
    ("user", f"{LIST}", {"Accept": "text/html"}),
]


@pytest.mark.parametrize(
    ("caller", "path", "extra", "dispatch"),
    [(*call, LEAN) for call in LIST_SERVED_LEAN] + [(*call, DRF) for call in LIST_SERVED_BY_DRF],
)
def test_the_list_answers_as_drf(rows, token, dispatches, caller, path, extra, dispatch):
    headers = _headers(token, caller, extra)
    answer, served, drf = _lean_and_drf(
        Client(), dispatches, "GET", path, view=EntitlementListView, **headers
    )
    assert served == dispatch
    assert answer == drf


def test_a_list_create_is_drfs(token, dispatches, alice_row):
    headers = {"Better-Auth-Token": token("service"), "Idempotency-Key": "lean-list-create"}
    body = {"user_id": "user_zed", "feature_code": "calendar", "plan_id": "premium_x"}
    response = Client().post(LIST, body, "application/json", headers=headers)
    assert response.status_code == 201
    assert dispatches == [DRF]


@pytest.mark.parametrize(
    ("caller", "method", "path", "body", "extra", "dispatch"),
    [(*call, LEAN) for call in SERVED_LEAN] + [(*call, DRF) for call in SERVED_BY_DRF],
)
def test_the_check_answers_as_drf(rows, token, dispatches, caller, method, path, body, extra, dispatch):
    answer, served, drf = _lean_and_drf(
        Client(), dispatches, method, path, body, **_headers(token, caller, extra)
    )
    assert served == dispatch
    assert answer == drf


@pytest.mark.parametrize(
    "limits",
    [
        {"ratio": 0.1, "tiny": 1e-05, "big": 1e16},  # floats: orjson writes them otherwise
        {"huge": 2**70},  # past 64 bits: orjson refuses
        {"note": "line \u2028 para \u2029"},  # escaped by DRF
        {"nested": {"deeper": [1, {"ratio": 2.5}]}},
    ],
)
def test_usage_limits_that_orjson_writes_otherwise_are_rendered_as_drf(token, dispatches, limits):
    EntitlementFactory(user_id="user_alice", feature__code="exports", usage_limits=limits)
    for request in [
        ("GET", f"{CHECK}?feature_code=exports"),
        ("POST", CHECK, {"feature_codes": ["exports", "nope"]}),
    ]:
        answer, served, drf = _lean_and_drf(Client(), dispatches, *request, **_headers(token, "user", {}))
        assert served == LEAN
        assert answer == drf
        assert answer[1] == JSONRenderer().render(json.loads(answer[1]))  # DRF's renderer's bytes


def test_the_bearer_header_is_served_lean_too(rows, token, dispatches):
    headers = {"Authorization": f"Bearer {token('user')}"}
    lean, served, drf = _lean_and_drf(
        Client(), dispatches, "GET", f"{CHECK}?feature_code=calendar", **headers
    )
    assert served == LEAN
    assert lean == drf
    assert json.loads(lean[1])["has_access"] is True


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_request_log_line_is_drfs(rows, token, dispatches, method):
    def logged() -> dict:
        headers = {"Better-Auth-Token": token("kid"), "X-Request-ID": "logged"}
        with capture_logs() as logs:
            if method == "GET":
                Client().get(CHECK, {"feature_code": "calendar"}, headers=headers)
            else:
                Client().post(CHECK, {"feature_codes": ["calendar"]}, "application/json", headers=headers)
        (line,) = logs.events("request_finished")
        return {name: value for name, value in line.items() if name not in ("duration_ms", "timestamp")}

    lean = logged()
    with drf_dispatch():
        drf = logged()
    assert dispatches == [DRF]
    assert lean == drf
    assert lean["user_id"] == "user_kid"


def test_a_staff_session_is_drfs(rows, as_staff, dispatches):
    client = as_staff("sue", "support")
    answer, served, drf = _lean_and_drf(
        client, dispatches, "GET", f"{CHECK}?feature_code=calendar&user_id=user_alice"
    )
    assert served == DRF
    assert answer == drf
    assert answer[0] == 200


@override_settings(DEBUG=True, AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH="")
def test_the_development_user_id_token_is_served_as_before(rows, dispatches):
    lean, served, drf = _lean_and_drf(
        Client(), dispatches, "GET", f"{CHECK}?feature_code=calendar", **{"Better-Auth-Token": "user_alice"}
    )
    assert served == LEAN
    assert lean == drf
    assert json.loads(lean[1])["user_id"] == "user_alice"


# --- rate limits ------------------------------------------------------------------------------


@pytest.fixture
def three_per_minute(settings, monkeypatch):
    monkeypatch.setattr(_WindowThrottle, "timer", lambda self: 1_900_000_050)  # 30 s into a window
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/min"},
    }


@pytest.mark.parametrize("dispatch", [LEAN, DRF])
def test_each_request_is_counted_once(rows, token, dispatches, three_per_minute, dispatch):
    """Answers, refusals by the view and the 429 itself: each one count, on either dispatch."""
    client = Client(headers={"Better-Auth-Token": token("user"), "X-Request-ID": "counted"})
    calls = [
        ("GET", f"{CHECK}?feature_code=calendar"),
        ("GET", f"{CHECK}?feature_code=Bad%20Code"),  # 400 from the view
        ("POST", CHECK),
        ("GET", f"{CHECK}?feature_code=calendar"),
        ("GET", f"{CHECK}?feature_code=calendar"),
    ]
    with contextlib.nullcontext() if dispatch == LEAN else drf_dispatch():
        answers = [
            client.generic(
                method, path, json.dumps({"feature_codes": ["calendar"]}), content_type="application/json"
            )
            if method == "POST"
            else client.generic(method, path)
            for method, path in calls
        ]
    assert [a.status_code for a in answers] == [200, 400, 200, 429, 429]
    assert answers[3]["Retry-After"] == "30"
    assert (dispatches == []) is (dispatch == LEAN)


def test_the_429_is_drfs(rows, token, dispatches, three_per_minute):
    bodies = {}
    for dispatch in (LEAN, DRF):
        from django.core.cache import cache

        cache.delete_pattern("throttle:*")
        client = Client(headers={"Better-Auth-Token": token("user"), "X-Request-ID": "throttled"})
        with contextlib.nullcontext() if dispatch == LEAN else drf_dispatch():
            for _ in range(3):
                client.get(CHECK, {"feature_code": "calendar"})
            response = client.get(CHECK, {"feature_code": "calendar"})
        bodies[dispatch] = (response.status_code, response.content, sorted(response.items()))
    assert bodies[LEAN][0] == 429
    assert bodies[LEAN] == bodies[DRF]


def test_the_lean_dispatch_leaves_the_schema_as_it_was(anon_client):
    """drf-spectacular describes an operation by its view's docstring, or a base class's."""
    schema = anon_client.get("/api/schema/", {"format": "json"}).json()
    operations = {
        operation["operationId"]: operation
        for path in schema["paths"].values()
        for operation in path.values()
    }
    check = (
        "The hot path: one Redis round trip (the rate limits' counts and the cache read), no SQL on a hit."
    )
    assert operations["entitlements_check"]["description"] == check
    assert operations["entitlements_check_batch"]["description"] == check
    assert "description" not in operations["entitlements_list"]
