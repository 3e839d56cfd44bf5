"""Who is calling: Better Auth JWTs (`better-auth-token` or `Authorization: Bearer`) and staff sessions."""

import functools
import re
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from rest_framework import authentication, exceptions


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request (DRF's `request.user`)."""

    user_id: str
    role: str  # "user", "service" or "staff"

    USER = "user"
    SERVICE = "service"
    STAFF = "staff"

    is_authenticated = True
    is_anonymous = False

    @property
    def is_privileged(self) -> bool:
        """Service and staff may act for any user."""
        return self.role in (self.SERVICE, self.STAFF)

    def may_act_for(self, user_id: str) -> bool:
        return self.is_privileged or self.user_id == user_id

    def __str__(self) -> str:
        return f"{self.role}:{self.user_id}"


_ROLE_CLAIMS = {"service": Principal.SERVICE, "admin": Principal.STAFF}
_DEV_USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,255}$")


@functools.cache
def _verification_keys() -> dict[str | None, object]:
    """Keys by `kid` (None: the single configured PEM key). Loaded once per process."""
    if settings.AUTH_PUBLIC_KEY_PEM:
        return {None: load_pem_public_key(settings.AUTH_PUBLIC_KEY_PEM.encode())}
    if settings.AUTH_JWKS_PATH:
        with open(settings.AUTH_JWKS_PATH, encoding="utf-8") as handle:
            jwks = jwt.PyJWKSet.from_json(handle.read())
        return {key.key_id: key.key for key in jwks.keys}
    return {}


def auth_is_configured() -> bool:
    return bool(settings.AUTH_PUBLIC_KEY_PEM or settings.AUTH_JWKS_PATH)


def verify_token(token: str) -> Principal:
    keys = _verification_keys()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise exceptions.AuthenticationFailed("Malformed token.") from error
    key = keys.get(header.get("kid")) or (next(iter(keys.values())) if len(keys) == 1 else None)
    if key is None:
        raise exceptions.AuthenticationFailed("Unknown signing key.")
    options = {"require": ["exp", "sub"], "verify_aud": bool(settings.AUTH_JWT_AUDIENCE)}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=settings.AUTH_JWT_ALGORITHMS,
            options=options,
            audience=settings.AUTH_JWT_AUDIENCE or None,
            issuer=settings.AUTH_JWT_ISSUER or None,
            leeway=settings.AUTH_JWT_LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as error:
        raise exceptions.AuthenticationFailed("Invalid or expired token.") from error
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise exceptions.AuthenticationFailed("Invalid token subject.")
    return Principal(user_id=subject, role=_ROLE_CLAIMS.get(claims.get("role"), Principal.USER))


def _token_from(request) -> str | None:
    token = request.META.get("HTTP_BETTER_AUTH_TOKEN")
    if token:
        return token.strip()
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
        if settings.DEBUG and _DEV_USER_ID.match(token):
            # Development only: the raw header value is the user id (API.md).
            return Principal(user_id=token, role=Principal.USER), token
        raise exceptions.AuthenticationFailed("Token verification is not configured.")

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """A logged-in Django staff user is staff on the API too (CSRF enforced)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        if not user.is_staff:
            return None
        return Principal(user_id=f"staff:{user.get_username()}", role=Principal.STAFF), None
