"""The development key pair (`var/`, DEBUG only) and the tokens it signs.

`make run` keeps an Ed25519 key pair at `AUTH_DEV_KEY_PATH` (made on first use) and prints a token
for an end user, a service and staff; `manage.py dev_token` makes more. A DEBUG process with no
key configured verifies JWTs with this pair's public key; with DEBUG off the pair is never read.
"""

import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

# Role names of `dev_token --role` -> the `role` claim the verifier maps (API.md).
ROLE_CLAIMS = {"user": None, "service": "service", "staff": "admin"}
DEFAULT_TTL_SECONDS = 24 * 3600


class DevKeysRefused(RuntimeError):
    """The development key pair is for DEBUG processes only."""


def _path() -> Path:
    return Path(settings.AUTH_DEV_KEY_PATH)


def _refuse_unless_debug() -> None:
    if not settings.DEBUG:
        raise DevKeysRefused("Development tokens are refused when DEBUG is false.")


def dev_private_key() -> Ed25519PrivateKey:
    """The pair's private key, made (mode 0600) when the file does not exist yet."""
    _refuse_unless_debug()
    path = _path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # made by another process at this moment
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


_public: dict[tuple[str, int], object] = {}


def dev_public_key():
    """The pair's public key, or None (DEBUG off, or no pair made yet). Read again when the file
    changes, so a server started before `dev_token` made the pair accepts its tokens."""
    if not settings.DEBUG:
        return None
    path = _path()
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return None
    if stamp not in _public:
        _public.clear()
        _public[stamp] = serialization.load_pem_private_key(path.read_bytes(), password=None).public_key()
    return _public[stamp]


def dev_token(*, role: str, sub: str, ttl: int = DEFAULT_TTL_SECONDS) -> str:
    """A signed token for `sub` in `role` (`user`, `service`, `staff`), valid `ttl` seconds."""
    if role not in ROLE_CLAIMS:
        raise ValueError(f"Unknown role {role!r}: one of {', '.join(ROLE_CLAIMS)}.")
    key = dev_private_key()
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + ttl, "jti": str(uuid.uuid4())}
    if ROLE_CLAIMS[role]:
        claims["role"] = ROLE_CLAIMS[role]
    if settings.AUTH_JWT_ISSUER:
        claims["iss"] = settings.AUTH_JWT_ISSUER
    if settings.AUTH_JWT_AUDIENCE:
        claims["aud"] = settings.AUTH_JWT_AUDIENCE
    return jwt.encode(claims, key, algorithm="EdDSA")
