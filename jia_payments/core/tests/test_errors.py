"""Every error an API client can meet is RFC 9457 problem details: no HTML, no stack trace."""

import pytest
from django.core.cache import cache
from django.test import override_settings
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
