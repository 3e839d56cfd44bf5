"""Fixtures every app's tests share: callers with real signed tokens, API clients."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from testsupport.tokens import TokenIssuer


@pytest.fixture(scope="session")
def token_issuer():
    return TokenIssuer()


@pytest.fixture(scope="session", autouse=True)
def _verify_tokens_with_test_key(token_issuer):
    """Every test verifies API tokens against this session's Ed25519 key, as production would."""
    with override_settings(AUTH_PUBLIC_KEY_PEM=token_issuer.public_pem, AUTH_JWKS_PATH=""):
        yield


@pytest.fixture
def api_client_for(token_issuer):
    """api_client_for("user_1") / api_client_for("svc", role="service") / role="admin" for staff."""

    def make(user_id: str | None = None, *, role: str | None = None) -> APIClient:
        client = APIClient()
        if user_id is not None:
            client.credentials(HTTP_BETTER_AUTH_TOKEN=token_issuer.token(user_id, role=role))
        return client

    return make


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def user_client(api_client_for):
    return api_client_for("user_alice")


@pytest.fixture
def service_client(api_client_for):
    return api_client_for("svc_family_app", role="service")


@pytest.fixture
def staff_client(api_client_for):
    return api_client_for("staff_bob", role="admin")
