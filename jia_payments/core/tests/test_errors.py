"""Every error an API client can meet is RFC 9457 problem details: no HTML, no stack trace."""

import io

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from pricing.models import Feature
from testsupport.problems import assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]

THINGS = "/api/test/things/"


def test_unknown_api_path_is_a_problem_404(user_client):
    body = assert_problem(user_client.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert body["detail"] == "No such resource."
    assert_problem(APIClient().get("/api/nothing"), 404, "not_found")


def test_non_api_404_stays_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_unhandled_error_in_an_api_view_is_a_problem_500_without_internals(user_client, caplog):
    response = user_client.get("/api/test/boom/", HTTP_ACCEPT="text/html")
    body = assert_problem(response, 500, "server_error")
    assert body["detail"] == "An unexpected error occurred."
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content
    assert "secret internals" in caplog.text  # but the operators see it in the log


def test_django_level_500_on_an_api_path_is_a_problem():
    client = APIClient(raise_request_exception=False)
    response = client.get("/api/test/django-boom/")
    assert_problem(response, 500, "server_error")
    assert b"secret internals" not in response.content


def test_malformed_json_is_400(user_client):
    response = user_client.post(THINGS, data=b'{"code": "x",', content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert not Feature.objects.exists()


@pytest.mark.parametrize("depth", [33, 100_000])
def test_json_nested_too_deep_is_400_not_500(user_client, depth):
    body = b'{"code": "x", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    response = user_client.post(THINGS, data=body, content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert not Feature.objects.exists()


def test_json_nested_exactly_to_the_bound_is_accepted(user_client):
    from jia_payments.core.api.parsers import MAX_DEPTH

    lists = MAX_DEPTH - 2  # the body and its metadata object are the first two levels
    body = b'{"code": "x", "metadata": {"k": ' + b"[" * lists + b"]" * lists + b"}}"
    response = user_client.post(THINGS, data=body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_nesting_depth_counts_containers():
    from jia_payments.core.api.parsers import nesting_depth

    assert nesting_depth(7) == 0
    assert nesting_depth({"x": [], "y": 1}) == 2
    assert nesting_depth([{"a": [[1]]}, 2]) == 4


@pytest.mark.parametrize(
    "body",
    [
        rb'{"code": "x", "metadata": {"note": "\ud800"}}',
        rb'{"code": "x", "metadata": {"\udfff": 1}}',
        rb'{"code": "x", "metadata": {"list": ["ok", ["\udc00"]]}}',
        rb'{"code": "x\ud800"}',
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_400_not_500(user_client, body):
    response = user_client.post(THINGS, data=body, content_type="application/json")
    problem = assert_problem(response, 400, "malformed_request")
    assert "unpaired surrogate" in problem["detail"]
    assert not Feature.objects.exists()


@pytest.mark.parametrize(
    "metadata",
    [rb'{"note": "a\u0000b"}', rb'{"a\u0000": 1}', rb'{"list": ["ok", [{"k": "\u0000"}]]}'],
)
def test_nul_in_a_json_object_field_is_a_400_on_that_field(user_client, metadata):
    body = b'{"code": "x", "metadata": ' + metadata + b"}"
    response = user_client.post(THINGS, data=body, content_type="application/json")
    assert_problem(response, 400, "invalid", {"metadata": ["Null characters are not allowed."]})
    assert not Feature.objects.exists()


def test_a_surrogate_pair_is_a_character_like_any_other(user_client):
    body = rb'{"code": "x", "metadata": {"smile": "\ud83d\ude00"}}'
    response = user_client.post(THINGS, data=body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert Feature.objects.get(code="x")


@pytest.mark.parametrize(
    ("metadata", "stored"),
    [
        (rb'{"note": "\\ud800"}', {"note": "\\ud800"}),  # an escaped backslash, then text
        (rb'{"note": "\u00e9"}', {"note": "\u00e9"}),
        (b'{"note": "' + b"[{" * 40 + b'"}', {"note": "[{" * 40}),  # brackets in a string nest nothing
    ],
)
def test_text_that_only_looks_deep_or_escaped_is_accepted(user_client, metadata, stored):
    body = b'{"code": "x", "metadata": ' + metadata + b"}"
    response = user_client.post(THINGS, data=body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["echo"]["metadata"] == stored


def test_a_byte_order_mark_before_the_body_is_400():
    from jia_payments.core.api.parsers import BoundedJSONParser

    with pytest.raises(ParseError, match="Unexpected UTF-8 BOM"):
        BoundedJSONParser().parse(io.BytesIO(b'\xef\xbb\xbf{"code": "x"}'), "application/json", {})


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": "x", "code": "y"}',
        b'{"code": "x", "metadata": {"k": 1, "k": 2}}',
        b'{"code": "x", "metadata": {"list": [{"a": 1, "a": 1}]}}',
    ],
)
def test_a_key_twice_in_one_object_is_400(user_client, body):
    response = user_client.post(THINGS, data=body, content_type="application/json")
    problem = assert_problem(response, 400, "malformed_request")
    assert "appears more than once" in problem["detail"]
    assert not Feature.objects.exists()


@pytest.mark.parametrize("body", [b'{"code": NaN}', b'{"code": "x", "metadata": {"n": Infinity}}'])
def test_nan_and_infinity_are_not_json(user_client, body):
    assert_problem(
        user_client.post(THINGS, data=body, content_type="application/json"), 400, "malformed_request"
    )


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", b"code=x"),
        ("application/x-www-form-urlencoded", b"code=x"),
        ("application/xml", b"<a/>"),
    ],
)
def test_wrong_content_type_is_415(user_client, content_type, data):
    response = user_client.post(THINGS, data=data, content_type=content_type)
    body = assert_problem(response, 415, "unsupported_media_type")
    assert content_type in body["detail"]
    assert not Feature.objects.exists()


def test_unknown_fields_are_rejected_not_ignored(user_client):
    response = user_client.post(THINGS, {"code": "x", "colour": "red", "Code": "y"}, format="json")
    assert_problem(response, 400, "invalid", {"Code": ["Unknown field."], "colour": ["Unknown field."]})
    assert not Feature.objects.exists()


def test_a_body_that_is_not_an_object_is_400(user_client):
    response = user_client.post(THINGS, [1, 2], format="json")
    assert_problem(
        response, 400, "invalid", {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    )


def test_too_large_body_is_413(user_client, settings):
    big = {"code": "x", "metadata": {"blob": "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}}
    assert_problem(user_client.post(THINGS, big, format="json"), 413, "payload_too_large")
    assert not Feature.objects.exists()


def test_method_not_allowed_is_405(user_client):
    body = assert_problem(user_client.delete(THINGS), 405, "method_not_allowed")
    assert body["detail"] == 'Method "DELETE" not allowed.'


def test_permission_denied_is_403_and_anonymous_is_401(user_client, anon_client, service_client):
    assert_problem(user_client.get("/api/test/staffish/"), 403, "permission_denied")
    assert_problem(anon_client.get("/api/test/staffish/"), 401, "not_authenticated")
    assert service_client.get("/api/test/staffish/").json() == {"who": "service:svc_family_app"}


def test_throttling_is_429_with_retry_after(user_client):
    cache.clear()
    assert user_client.get("/api/test/throttled/").status_code == 200
    response = user_client.get("/api/test/throttled/")
    body = assert_problem(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert body["detail"].startswith("Request was throttled.")


def test_errors_are_json_even_when_html_is_asked_for(user_client):
    response = user_client.post(THINGS, {"colour": "red"}, format="json", HTTP_ACCEPT="text/html")
    assert_problem(
        response, 400, "invalid", {"code": ["This field is required."], "colour": ["Unknown field."]}
    )
    response = user_client.get(THINGS, HTTP_ACCEPT="application/xml")
    assert_problem(response, 406, "not_acceptable")


@override_settings(DEBUG=True)
def test_with_debug_on_api_errors_are_still_problems_not_technical_pages():
    client = APIClient(raise_request_exception=False)
    assert_problem(client.get("/api/v1/no-such-thing/"), 404, "not_found")
    response = client.get("/api/test/django-boom/")
    assert_problem(response, 500, "server_error")
    assert b"secret internals" not in response.content


def test_a_plain_django_405_on_an_api_path_is_a_problem(client):
    response = client.post("/api/test/django-get-only/")
    assert_problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


LISTS = [
    "/api/v1/payments/",
    "/api/v1/plans/",
    "/api/v1/pricing-zones/",
    "/api/v1/entitlements/",
    "/api/v1/prices/",
]
QUERIES = {"/api/v1/entitlements/": {"user_id": "user_alice"}, "/api/v1/prices/": {"country": "IN"}}


@pytest.mark.urls("jia_payments.urls")
@pytest.mark.parametrize("path", LISTS)
def test_lists_asked_for_html_by_a_browser_render_the_browsable_api(staff_client, path):
    from pricing.tests.factories import PlanFactory, PricingZoneFactory

    PlanFactory(id="basic_x")
    PricingZoneFactory()
    as_json = staff_client.get(path, QUERIES.get(path, {}))
    assert as_json.status_code == 200, as_json.content
    for accept in ("text/html", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"):
        page = staff_client.get(path, QUERIES.get(path, {}), HTTP_ACCEPT=accept)
        assert page.status_code == 200, page.content[:500]
        assert page["Content-Type"].startswith("text/html")
        assert b"&quot;count&quot;" in page.content and b"&quot;results&quot;" in page.content


@pytest.mark.urls("jia_payments.urls")
def test_every_404_has_one_title(service_client):
    import uuid

    responses = [
        service_client.get("/api/v1/no-such-thing/"),
        service_client.get(f"/api/v1/payments/{uuid.uuid4()}/"),
        service_client.get("/api/v1/payments/not-a-uuid/"),
        service_client.get("/api/v1/plans/no_such_plan/"),
        service_client.get("/api/v1/pricing-zones/ZZ/"),
        service_client.post(
            f"/stripe/webhook/{uuid.uuid4()}/",
            b"{}",
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE="t=1,v1=x",
        ),
    ]
    titles = {assert_problem(response, 404, "not_found")["title"] for response in responses}
    assert titles == {"Not found"}


def test_titles_are_one_spelling_for_each_status():
    from jia_payments.core.api.errors import title_for

    assert [title_for(status) for status in (400, 404, 405, 413, 414, 431, 500)] == [
        "Bad request",
        "Not found",
        "Method not allowed",
        "Payload too large",
        "URI too long",
        "Request header fields too large",
        "Internal server error",
    ]
