"""Django's browser state (the session and its user; CSRF) on API requests with and without
cookies: a token caller sends none and gets no session store; the answers are Django's."""

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.middleware.csrf import _get_new_csrf_string

WHOAMI = "/api/test/whoami/"

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]


@pytest.fixture
def sessions_made(monkeypatch):
    """The requests that got a session store from Django's middleware."""
    made = []
    process_request = DjangoSessionMiddleware.process_request

    def counted(self, request):
        made.append(request.path)
        return process_request(self, request)

    monkeypatch.setattr(DjangoSessionMiddleware, "process_request", counted)
    return made


def test_a_token_caller_gets_no_session_and_no_cookie(api_client_for, sessions_made):
    response = api_client_for("user_mw").get(WHOAMI)
    assert response.status_code == 200
    assert response.json() == {"user_id": "user_mw", "role": "user"}
    assert sessions_made == []
    assert response.cookies == {}
    assert response["Vary"] == "Accept"


def test_without_a_token_the_anonymous_answer_varies_on_cookie_as_djangos_does(client, sessions_made):
    response = client.get(WHOAMI)  # the staff session authenticator read the (anonymous) user
    assert response.status_code == 401
    assert response["Vary"] == "Accept, Cookie"
    assert sessions_made == []


def test_a_staff_session_on_the_api_is_djangos_session(admin_client, sessions_made):
    response = admin_client.get(WHOAMI)
    assert response.json() == {"user_id": "staff:admin", "role": "staff"}
    assert response["Vary"] == "Accept, Cookie"
    assert sessions_made == [WHOAMI]


def test_pages_outside_the_api_keep_their_session(client, sessions_made):
    client.get("/no-such-page/")
    assert sessions_made == ["/no-such-page/"]


def test_a_staff_session_write_with_its_csrf_cookie_and_token_is_accepted(admin_user):
    from django.test import Client

    from pricing.models import Feature

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    secret = _get_new_csrf_string()
    client.cookies[settings.CSRF_COOKIE_NAME] = secret
    response = client.post(
        "/api/test/things/", {"code": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN=secret
    )
    assert response.status_code == 201, response.content
    assert Feature.objects.filter(code="x").exists()


def test_under_asgi_the_api_answers_as_under_wsgi(token_issuer):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    token = token_issuer.token("user_mw_asgi")
    response = async_to_sync(AsyncClient().get)(WHOAMI, headers={"better-auth-token": token})
    assert response.status_code == 200
    assert response.json() == {"user_id": "user_mw_asgi", "role": "user"}
    anonymous = async_to_sync(AsyncClient().get)(WHOAMI)
    assert anonymous.status_code == 401
    assert anonymous["Vary"] == "Accept, Cookie"
