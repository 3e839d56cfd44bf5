"""Who may call: every kind of token the API must refuse, and the ones it must accept."""

import base64
import hashlib
import hmac
import json
import time
from importlib.metadata import version

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from django.core.checks import run_checks
from django.test import override_settings
from rest_framework.test import APIClient

from testsupport.tokens import TokenIssuer

pytestmark = [pytest.mark.django_db, pytest.mark.urls("jia_payments.core.tests.urls")]

WHOAMI = "/api/test/whoami/"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made_token(header: dict, claims: dict, sign) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _claims(**extra) -> dict:
    now = int(time.time())
    return {"sub": "user_mallory", "iat": now, "exp": now + 600, **extra}


def _call(token: str | None, *, header: str = "better-auth-token"):
    client = APIClient()
    if token is not None:
        if header == "better-auth-token":
            client.credentials(HTTP_BETTER_AUTH_TOKEN=token)
        else:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(WHOAMI)


def _assert_401(response, code: str = "authentication_failed"):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == code
    assert body["type"] == f"https://docs.jia.app/problems/{code}"
    assert set(body) == {"type", "title", "status", "detail", "code"}


def test_no_token_is_401_not_authenticated():
    _assert_401(_call(None), "not_authenticated")


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.", "x" * 9000, "Ünïcode"])
def test_garbage_is_401(garbage):
    _assert_401(_call(garbage))


def test_a_token_that_does_not_parse_is_malformed_one_that_does_not_verify_is_invalid(token_issuer):
    assert _call("a.b.c").json()["detail"] == "Malformed token."
    header, claims, signature = token_issuer.token("user_alice").split(".")
    assert _call(f"{header}.{claims}.{_altered(signature)}").json()["detail"] == "Invalid or expired token."
    assert _call(f"{header}.!!.{signature}").json()["detail"] == "Malformed token."
    assert _call(token_issuer.token("user_alice", ttl=-600)).json()["detail"] == "Invalid or expired token."


def test_alg_none_is_401():
    token = _hand_made_token({"alg": "none", "typ": "JWT"}, _claims(), lambda _: b"")
    _assert_401(_call(token))
    unsigned = token.rsplit(".", 1)[0] + "."
    _assert_401(_call(unsigned))


def test_hs256_signed_with_the_public_key_bytes_is_401(token_issuer):
    """The classic key-confusion forgery: HMAC keyed with the verifier's own public key."""
    secret = token_issuer.public_pem.encode()
    forged = _hand_made_token(
        {"alg": "HS256", "typ": "JWT"},
        _claims(role="admin"),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )
    _assert_401(_call(forged))
    # Even a configuration that (wrongly) lists HS256 never verifies it: the check refuses such a
    # configuration and the authenticator only passes public-key algorithms to PyJWT.
    with override_settings(AUTH_JWT_ALGORITHMS=["EdDSA", "HS256"]):
        assert [e.id for e in run_checks() if e.id.startswith("core.")] == ["core.E001"]
        _assert_401(_call(forged))


def test_pinned_pyjwt_has_the_2026_public_key_as_hmac_secret_fix(token_issuer):
    """CVE-2026-48526 (GHSA-xgmm-8j9v-c9wx), fixed in PyJWT 2.13.0: a public JWK as HMAC secret."""
    major, minor = (int(part) for part in version("PyJWT").split(".")[:2])
    assert (major, minor) >= (2, 13)
    public_key = token_issuer.private_key.public_key()
    jwk_json = jwt.algorithms.OKPAlgorithm.to_jwk(public_key)
    forged = _hand_made_token(
        {"alg": "HS256", "typ": "JWT"},
        _claims(),
        lambda data: hmac.new(jwk_json.encode(), data, hashlib.sha256).digest(),
    )
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forged, jwk_json, algorithms=["HS256", "EdDSA"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forged, token_issuer.public_pem, algorithms=["HS256", "EdDSA"])
    # and through a PyJWK whose "oct" secret is the public key (validated since 2.15: f91ed44)
    pem_as_secret = jwt.PyJWK({"kty": "oct", "k": _b64(token_issuer.public_pem.encode()), "alg": "HS256"})
    forged_with_pem = _hand_made_token(
        {"alg": "HS256", "typ": "JWT"},
        _claims(),
        lambda data: hmac.new(token_issuer.public_pem.encode(), data, hashlib.sha256).digest(),
    )
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forged_with_pem, pem_as_secret, algorithms=["HS256"])


def test_expired_token_is_401(token_issuer):
    _assert_401(_call(token_issuer.token("user_alice", ttl=-120)))


def test_a_verified_token_is_not_verified_again_until_it_expires(token_issuer, settings, monkeypatch):
    from jia_payments.core.api import auth

    settings.AUTH_JWT_LEEWAY_SECONDS = 0
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    token = token_issuer.token("user_alice", ttl=2)  # at least 1 s left
    assert [_call(token).status_code for _ in range(3)] == [200] * 3
    assert len(decoded) == 1
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires + 0.05 - time.time()))
    _assert_401(_call(token))


def test_a_verified_token_is_checked_again_when_the_auth_settings_change(token_issuer, settings):
    token = token_issuer.token("user_alice")
    assert _call(token).status_code == 200
    settings.AUTH_JWT_ISSUER = "https://auth.jia.app"
    _assert_401(_call(token))


def test_the_verified_tokens_are_bounded(token_issuer, monkeypatch):
    from jia_payments.core.api import auth

    monkeypatch.setattr(auth, "VERIFIED_TOKENS_MAX", 3)
    auth.forget_verified_tokens()
    tokens = [token_issuer.token(f"user_{n}") for n in range(5)]
    for token in tokens:
        assert _call(token).status_code == 200
    assert list(auth._verified) == tokens[2:]


def _altered(text: str) -> str:
    """One character changed, in the middle (the last one may only carry padding bits)."""
    middle = len(text) // 2
    return text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]


def test_a_cached_token_with_another_signature_or_claims_is_verified_and_refused(token_issuer):
    from jia_payments.core.api import auth

    token = token_issuer.token("user_alice")
    assert _call(token).status_code == 200
    assert token in auth._verified
    header, claims, signature = token.split(".")
    unverified = jwt.decode(token, options={"verify_signature": False})
    staff = _b64(json.dumps({**unverified, "role": "admin"}).encode())
    forged = [
        f"{header}.{claims}.{_altered(signature)}",
        f"{header}.{staff}.{signature}",  # the claims of a staff caller, the cached signature kept
        jwt.encode(unverified, TokenIssuer().private_key, "EdDSA"),  # the same claims, another key
    ]
    for each in forged:
        _assert_401(_call(each))
        assert each not in auth._verified
    assert _call(token).status_code == 200


def test_a_cached_token_is_refused_once_the_key_rotates(token_issuer, settings):
    token = token_issuer.token("user_alice")
    assert _call(token).status_code == 200
    rotated = TokenIssuer()
    settings.AUTH_PUBLIC_KEY_PEM = rotated.public_pem
    _assert_401(_call(token))
    assert _call(rotated.token("user_alice")).status_code == 200


def test_token_without_exp_or_sub_is_401(token_issuer):
    key = token_issuer.private_key
    no_exp = jwt.encode({"sub": "user_alice"}, key, algorithm="EdDSA")
    no_sub = jwt.encode({"exp": int(time.time()) + 600}, key, algorithm="EdDSA")
    empty_sub = jwt.encode({"sub": "", "exp": int(time.time()) + 600}, key, algorithm="EdDSA")
    for token in (no_exp, no_sub, empty_sub):
        _assert_401(_call(token))


@pytest.mark.django_db
@pytest.mark.parametrize("subject", ["user\x00alice", "user\ud800alice"])
def test_a_subject_postgresql_cannot_hold_is_401_not_a_500(token_issuer, subject):
    # PyJWT decodes a NUL or an unpaired surrogate in `sub`; the first query with it would fail.
    token = token_issuer.token(subject)
    client = APIClient()
    client.credentials(HTTP_BETTER_AUTH_TOKEN=token)
    _assert_401(client.get("/api/v1/payments/"))
    _assert_401(client.get("/api/v1/entitlements/check/", {"feature_code": "ad_free"}))


def test_token_signed_by_another_key_is_401():
    _assert_401(_call(TokenIssuer().token("user_alice", role="admin")))


@override_settings(AUTH_JWT_ISSUER="https://auth.jia.app", AUTH_JWT_AUDIENCE="jia-payments")
def test_issuer_and_audience_are_checked_when_configured(token_issuer):
    good = {"iss": "https://auth.jia.app", "aud": "jia-payments"}
    assert _call(token_issuer.token("user_alice", **good)).status_code == 200
    _assert_401(_call(token_issuer.token("user_alice", iss="https://evil.example", aud="jia-payments")))
    _assert_401(_call(token_issuer.token("user_alice", iss="https://auth.jia.app", aud="another-app")))
    _assert_401(_call(token_issuer.token("user_alice", aud="jia-payments")))  # no iss
    _assert_401(_call(token_issuer.token("user_alice", iss="https://auth.jia.app")))  # no aud


@pytest.mark.parametrize(
    ("role", "expected"),
    [(None, "user"), ("user", "user"), ("service", "service"), ("admin", "staff"), ("root", "user")],
)
def test_valid_eddsa_token_gives_the_caller_and_role(token_issuer, role, expected):
    response = _call(token_issuer.token("user_alice", role=role))
    assert response.status_code == 200
    assert response.json() == {"user_id": "user_alice", "role": expected}


def test_authorization_bearer_is_accepted_too(token_issuer):
    response = _call(token_issuer.token("user_alice"), header="authorization")
    assert response.json() == {"user_id": "user_alice", "role": "user"}


def _rsa_issuer() -> tuple[TokenIssuer, str]:
    issuer = TokenIssuer(generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
    return issuer, issuer.public_pem


def test_valid_rs256_token_when_configured(token_issuer):
    rsa_issuer, pem = _rsa_issuer()
    with override_settings(AUTH_PUBLIC_KEY_PEM=pem, AUTH_JWT_ALGORITHMS=["RS256"]):
        response = _call(rsa_issuer.token("svc_family_app", role="service"))
        assert response.json() == {"user_id": "svc_family_app", "role": "service"}
        _assert_401(_call(token_issuer.token("user_alice")))  # EdDSA is not configured now
    # and RS256 is not accepted when only EdDSA is configured (the default)
    _assert_401(_call(rsa_issuer.token("user_alice")))


def test_jwks_file_with_several_keys_picks_the_key_by_kid(tmp_path, token_issuer):
    ed_issuer = TokenIssuer(Ed25519PrivateKey.generate())
    rsa_issuer, _ = _rsa_issuer()
    ed_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed_issuer.private_key.public_key()))
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_issuer.private_key.public_key()))
    jwks = {"keys": [{**ed_jwk, "kid": "ed-1", "alg": "EdDSA"}, {**rsa_jwk, "kid": "rsa-1", "alg": "RS256"}]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    settings = {
        "AUTH_PUBLIC_KEY_PEM": "",
        "AUTH_JWKS_PATH": str(path),
        "AUTH_JWT_ALGORITHMS": ["EdDSA", "RS256"],
    }
    with override_settings(**settings):
        ed_token = jwt.encode(_claims(sub="user_ed"), ed_issuer.private_key, "EdDSA", headers={"kid": "ed-1"})
        rsa_token = jwt.encode(
            _claims(sub="user_rsa"), rsa_issuer.private_key, "RS256", headers={"kid": "rsa-1"}
        )
        assert _call(ed_token).json() == {"user_id": "user_ed", "role": "user"}
        assert _call(rsa_token).json() == {"user_id": "user_rsa", "role": "user"}
        # a key used under another key's kid, an unknown kid, no kid with several keys: refused
        swapped = jwt.encode(_claims(), ed_issuer.private_key, "EdDSA", headers={"kid": "rsa-1"})
        unknown = jwt.encode(_claims(), ed_issuer.private_key, "EdDSA", headers={"kid": "other"})
        no_kid = jwt.encode(_claims(), ed_issuer.private_key, "EdDSA")
        for token in (swapped, unknown, no_kid, token_issuer.token("user_alice")):
            _assert_401(_call(token))


@override_settings(DEBUG=True, AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH="")
def test_development_fallback_takes_the_raw_header_as_user_id():
    response = _call("spiff_id_test_user_123")
    assert response.json() == {"user_id": "spiff_id_test_user_123", "role": "user"}
    _assert_401(_call("not a user id!"))


@override_settings(DEBUG=False, AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH="")
def test_no_development_fallback_in_production():
    _assert_401(_call("spiff_id_test_user_123"))


@override_settings(DEBUG=True)
def test_no_development_fallback_when_a_key_is_configured():
    _assert_401(_call("spiff_id_test_user_123"))


def test_django_staff_session_is_staff_on_the_api(admin_client, django_user_model, client):
    assert admin_client.get(WHOAMI).json() == {"user_id": "staff:admin", "role": "staff"}
    user = django_user_model.objects.create_user("plain", password="pw-1234567")
    client.force_login(user)
    _assert_401(client.get(WHOAMI), "not_authenticated")


def test_staff_session_writes_need_the_csrf_token(admin_user):
    from django.test import Client

    from pricing.models import Feature

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/test/things/", {"code": "x"}, content_type="application/json")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "CSRF" in body["detail"]
    assert not Feature.objects.exists()


def _core_errors() -> list[str]:
    return [error.id for error in run_checks() if error.id.startswith("core.")]


def test_checks_refuse_a_key_that_does_not_load_or_fit_the_algorithms(tmp_path, token_issuer):
    assert _core_errors() == []
    with override_settings(AUTH_PUBLIC_KEY_PEM="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"):
        assert _core_errors() == ["core.E003"]
    with override_settings(AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH=str(tmp_path / "missing.json")):
        assert _core_errors() == ["core.E003"]
    with override_settings(AUTH_JWT_ALGORITHMS=["RS256"]):  # the test key is Ed25519
        assert _core_errors() == ["core.E004"]
    _, rsa_pem = _rsa_issuer()
    with override_settings(AUTH_PUBLIC_KEY_PEM=rsa_pem, AUTH_JWT_ALGORITHMS=["RS256", "PS256"]):
        assert _core_errors() == []


@override_settings(DEBUG=True, AUTH_PUBLIC_KEY_PEM="", AUTH_JWKS_PATH="")
def test_a_development_server_never_takes_a_jwt_shaped_value_as_a_user_id(token_issuer):
    # A real signed token (its text is in token_issuer.issued: the autouse log check fails the
    # test if any log line holds it) and a hand-made three-part value.
    for value in (token_issuer.token("user_alice"), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig", "a.b.c"):
        _assert_401(_call(value))


@pytest.mark.parametrize("role", [["admin"], {"name": "admin"}, 1, True])
def test_a_role_claim_that_is_not_a_string_is_401(token_issuer, role):
    _assert_401(_call(token_issuer.token("user_mallory", role=role)))
