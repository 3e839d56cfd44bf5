"""The development key pair and its tokens: made on first use in var/, accepted only by a DEBUG
process with no key configured, refused (and never read) with DEBUG off."""

import io
import stat

import jwt
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from jia_payments.core.api.dev_tokens import dev_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]

WHOAMI = "/api/test/whoami/"


def _call(token: str):
    client = APIClient()
    client.credentials(HTTP_BETTER_AUTH_TOKEN=token)
    return client.get(WHOAMI)


@pytest.fixture
def dev_mode(tmp_path):
    path = tmp_path / "var" / "dev_auth_ed25519.pem"
    with override_settings(DEBUG=True, AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH="", AUTH_DEV_KEY_PATH=path):
        yield path


def _command(*args, **options) -> str:
    out = io.StringIO()
    call_command("dev_token", *args, stdout=out, **options)
    return out.getvalue()


def test_dev_token_makes_the_pair_once_and_signs_each_role(dev_mode):
    assert not dev_mode.exists()
    user = _command(role="user", sub="spiff_id_alice").strip()
    assert stat.S_IMODE(dev_mode.stat().st_mode) == 0o600
    key_before = dev_mode.read_bytes()
    service = _command(role="service", sub="billing").strip()
    staff = _command(role="staff", sub="ops").strip()
    assert dev_mode.read_bytes() == key_before
    assert _call(user).json() == {"user_id": "spiff_id_alice", "role": "user"}
    assert _call(service).json() == {"user_id": "billing", "role": "service"}
    assert _call(staff).json() == {"user_id": "ops", "role": "staff"}
    claims = jwt.decode(user, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert jwt.get_unverified_header(user)["alg"] == "EdDSA"


def test_the_run_printout_has_three_working_tokens(dev_mode):
    printed = _command(all=True)
    tokens = [line.strip() for line in printed.splitlines() if line.startswith("    ")]
    assert [_call(t).json() for t in tokens] == [
        {"user_id": "spiff_id_test_user_123", "role": "user"},
        {"user_id": "dev-service", "role": "service"},
        {"user_id": "dev-staff", "role": "staff"},
    ]
    assert "manage.py dev_token --role user|service|staff --sub NAME" in printed


def test_a_jwt_shaped_value_is_verified_never_a_user_id(dev_mode):
    assert _call("spiff_id_test_user_123").json() == {"user_id": "spiff_id_test_user_123", "role": "user"}
    for value in ("user.name.x", "a.b.c"):  # would pass the user-id pattern
        assert _call(value).status_code == 401
    token = _command(role="user", sub="alice").strip()
    head, body, signature = token.split(".")
    assert _call(f"{head}.{body}.{signature[::-1]}").status_code == 401
    other = jwt.encode({"sub": "alice", "exp": 2_000_000_000}, "k" * 32, algorithm="HS256")
    assert _call(other).status_code == 401


def test_a_jwt_before_the_pair_exists_is_401(dev_mode):
    token = jwt.encode({"sub": "alice", "exp": 2_000_000_000}, "k" * 32, algorithm="HS256")
    response = _call(token)
    assert response.status_code == 401
    assert "dev_token" in response.json()["detail"]
    assert not dev_mode.exists()


def test_refused_when_debug_is_false(dev_mode):
    token = _command(role="service", sub="billing").strip()
    with override_settings(DEBUG=False):
        with pytest.raises(CommandError, match="refused when DEBUG is false"):
            _command(role="user", sub="alice")
        with pytest.raises(Exception, match="DEBUG is false"):
            dev_token(role="user", sub="alice")
        assert _call(token).status_code == 401  # the pair is never read


def test_a_configured_key_wins_over_the_pair(dev_mode, token_issuer):
    dev = _command(role="service", sub="billing").strip()
    with override_settings(AUTH_PUBLIC_KEY_PEM=token_issuer.public_pem):
        assert _call(dev).status_code == 401
        assert _call(token_issuer.token("alice")).json() == {"user_id": "alice", "role": "user"}
