"""Who is calling: Better Auth JWTs (`better-auth-token` or `Authorization: Bearer`) and staff sessions.

Tokens are verified with PyJWT against `AUTH_PUBLIC_KEY_PEM` or the JWKS file `AUTH_JWKS_PATH`,
with the algorithms of `AUTH_JWT_ALGORITHMS` (asymmetric only: an HMAC or `none` algorithm is a
configuration error, see `jia_payments.core.ops.checks`). `exp` and `sub` are required; `iss`/`aud`
are checked when configured. Without a key, and only with DEBUG on, a JWT is verified with the
development key pair (`core.api.dev_tokens`) and any other value is taken as the user id (API.md,
development only): a value shaped like a JWT is never taken as a user id.
"""

import contextlib
import functools
import re
import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from rest_framework import authentication, exceptions

from jia_payments.core.api.validation import USER_ID_MAX_LENGTH, is_plain_user_id

# Signature algorithms a public key can verify. HS*/none never verify a Better Auth token.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
MAX_TOKEN_LENGTH = 8192
# Text PostgreSQL cannot hold (NUL, unpaired surrogates): a subject with it would fail at the first
# query as a 500, so the token is refused instead.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request (DRF's `request.user`)."""

    user_id: str
    role: str  # "user", "service" or "staff"
    # A logged-in Django staff user (admin's session), whose admin permissions bound what it may
    # change through the API (`core.api.permissions`); None for token callers.
    session_user: object = field(default=None, compare=False, repr=False)

    USER = "user"
    SERVICE = "service"
    STAFF = "staff"

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        """A stable identity per caller (DRF's user throttles key on `request.user.pk`)."""
        return str(self)

    @property
    def is_privileged(self) -> bool:
        """Service and staff may act for any user."""
        return self.role in (self.SERVICE, self.STAFF)

    @property
    def is_staff(self) -> bool:
        return self.role == self.STAFF

    def may_act_for(self, user_id: str) -> bool:
        return self.is_privileged or self.user_id == user_id

    def __str__(self) -> str:
        return f"{self.role}:{self.user_id}"


_ROLE_CLAIMS = {"service": Principal.SERVICE, "admin": Principal.STAFF}


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: always verified, never taken as a development user id."""
    return token.count(".") == 2


def allowed_algorithms() -> list[str]:
    """The configured algorithms that can verify a public-key signature (never HS*/none)."""
    return [name for name in settings.AUTH_JWT_ALGORITHMS if name in ASYMMETRIC_ALGORITHMS]


@functools.cache
def _verification_keys() -> dict[str | None, object]:
    """Keys by `kid` (None: the single configured PEM key). Loaded once per process.

    JWKS entries stay `PyJWK` objects so PyJWT binds each key to its own algorithm.
    """
    if settings.AUTH_PUBLIC_KEY_PEM:
        return {None: load_pem_public_key(settings.AUTH_PUBLIC_KEY_PEM.encode())}
    if settings.AUTH_JWKS_PATH:
        with open(settings.AUTH_JWKS_PATH, encoding="utf-8") as handle:
            jwks = jwt.PyJWKSet.from_json(handle.read())
        return {key.key_id: key for key in jwks.keys}
    return {}


def auth_is_configured() -> bool:
    return bool(settings.AUTH_PUBLIC_KEY_PEM or settings.AUTH_JWKS_PATH)


def _key_for(header: dict):
    keys = _verification_keys()
    kid = header.get("kid")
    if kid is not None and kid in keys:
        return keys[kid]
    if len(keys) == 1:
        return next(iter(keys.values()))
    raise exceptions.AuthenticationFailed("Unknown signing key.")


# Tokens already verified in this process, with the time they stop being valid (`exp` plus the
# leeway). Clients send the same token for many requests; a signature check and two JWT parses
# cost more than a cached check of the entitlement itself. Emptied when an AUTH_* setting changes
# (core.apps), bounded in size; a token is refused once its time is up, as PyJWT would.
_verified: dict[str, tuple[Principal, float]] = {}
VERIFIED_TOKENS_MAX = 10_000


def forget_verified_tokens() -> None:
    _verified.clear()


def verify_token(token: str) -> Principal:
    found = _verified.get(token)
    if found is not None:
        if time.time() < found[1]:
            return found[0]
        _verified.pop(token, None)
    principal, valid_until = _verify(token)
    if len(_verified) >= VERIFIED_TOKENS_MAX:
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):
            del _verified[next(iter(_verified))]  # the oldest
    _verified[token] = (principal, valid_until)
    return principal


def _header_of(token: str) -> dict:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise exceptions.AuthenticationFailed("Malformed token.") from error


def _verify(token: str, key=None) -> tuple[Principal, float]:
    if len(token) > MAX_TOKEN_LENGTH:
        raise exceptions.AuthenticationFailed("Malformed token.")
    if key is None:
        keys = _verification_keys()
        # One key verifies every token: its header is read (PyJWT's parse costs as much as the
        # signature check) only to choose among several.
        key = next(iter(keys.values())) if len(keys) == 1 else _key_for(_header_of(token))
    options = {"require": ["exp", "sub"], "verify_aud": bool(settings.AUTH_JWT_AUDIENCE)}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=allowed_algorithms(),
            options=options,
            audience=settings.AUTH_JWT_AUDIENCE or None,
            issuer=settings.AUTH_JWT_ISSUER or None,
            leeway=settings.AUTH_JWT_LEEWAY_SECONDS,
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        _header_of(token)  # a token whose header does not even parse is malformed
        raise exceptions.AuthenticationFailed("Invalid or expired token.") from error
    subject = claims.get("sub")
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > USER_ID_MAX_LENGTH
        or _UNSTORABLE.search(subject)
    ):
        raise exceptions.AuthenticationFailed("Invalid token subject.")
    role = claims.get("role")
    if role is not None and not isinstance(role, str):
        raise exceptions.AuthenticationFailed("Invalid token role.")
    principal = Principal(user_id=subject, role=_ROLE_CLAIMS.get(role, Principal.USER))
    # PyJWT refuses a token once `exp <= now - leeway`.
    return principal, float(claims["exp"]) + settings.AUTH_JWT_LEEWAY_SECONDS


def _token_from(request) -> str | None:
    token = request.META.get("HTTP_BETTER_AUTH_TOKEN", "").strip()
    if token:
        return token
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class BetterAuthTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = _token_from(request)
        if token is None:
            return None
        if auth_is_configured():
            return verify_token(token), token
        if settings.DEBUG and looks_like_jwt(token):
            return _verify_with_dev_key(token), token
        if settings.DEBUG and is_plain_user_id(token):
            # Development only: the raw header value is the user id (API.md).
            return Principal(user_id=token, role=Principal.USER), token
        raise exceptions.AuthenticationFailed("Token verification is not configured.")

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def _verify_with_dev_key(token: str) -> Principal:
    """Development only: verified against the key pair `make run` keeps in var/ (not cached, so a
    token is never accepted once DEBUG is off)."""
    from jia_payments.core.api.dev_tokens import dev_public_key

    key = dev_public_key()
    if key is None:
        raise exceptions.AuthenticationFailed(
            "No development key pair yet: run `manage.py dev_token` (make run does)."
        )
    return _verify(token, key)[0]


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """A logged-in Django staff user is staff on the API too (CSRF enforced)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_staff:
            return None
        return Principal(
            user_id=f"staff:{user.get_username()}", role=Principal.STAFF, session_user=user
        ), None
